use std::time::Duration;

/// Parses a human-friendly duration such as `500ms`, `2s`, `1m` or `1m30s`.
///
/// Meant as a clap `value_parser`, so that a bad value is reported as a usage
/// error naming the flag, never as a panic. A bare number is refused: `30`
/// could mean seconds or milliseconds, and a sidecar's timeouts are worth
/// being explicit about.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|err| format!("{err} (expected a number and a unit, like 500ms, 2s or 1m)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn refuses_what_is_not_a_duration() {
        for bad in ["", "30", "abc", "5 parsecs", "-1s", "1.5.s"] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.contains("like 500ms, 2s or 1m"), "{bad}: {err}");
        }
    }
}
