//! Hands the target triple that testkit is compiled for to its code.
//!
//! Cargo tells only build scripts which target they build for (`TARGET`),
//! and testkit needs it at run time: the runner cargo runs the tests through
//! is named after it (`CARGO_TARGET_<TRIPLE>_RUNNER`), and the binaries the
//! tests start must go through the same runner.

fn main() {
    let target = std::env::var("TARGET").expect("cargo sets TARGET for build scripts");
    println!("cargo::rustc-env=TESTKIT_TARGET={target}");
    // TARGET is all this reads, and a new target is a new build directory.
    println!("cargo::rerun-if-changed=build.rs");
}
