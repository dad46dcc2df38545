// A stand-in, not upstream's module: the Go module proxy refuses sigs.k8s.io/iptables-wrappers
// v1.0.0's zip, which v1.38.0-beta.0's kubelet imports. README.md says what it is and why.
module sigs.k8s.io/iptables-wrappers

go 1.26
