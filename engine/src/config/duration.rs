//! Durations: integer seconds (`300`) or humantime strings (`"300s"`, `"5m"`, `"2h4m"`).

use std::time::Duration;

use super::raw::IntOrStr;

/// The longest duration accepted anywhere in the config. Keeps `now + timeout` far from
/// overflow and catches unit mistakes.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

const HINT: &str = "write integer seconds or a string like \"300s\", \"5m\", \"2h4m\"";

/// Parses a duration value; zero and anything above [`MAX_DURATION`] are rejected.
pub(crate) fn parse_duration(value: &IntOrStr) -> Result<Duration, String> {
    let d = match value {
        IntOrStr::Int(secs) => match u64::try_from(*secs) {
            Ok(secs) => Duration::from_secs(secs),
            Err(_) => return Err("must be greater than zero".to_owned()),
        },
        IntOrStr::Str(text) => humantime::parse_duration(text.trim())
            .map_err(|e| format!("invalid duration \"{text}\": {e}; {HINT}"))?,
    };
    if d.is_zero() {
        Err("must be greater than zero".to_owned())
    } else if d > MAX_DURATION {
        Err("must be at most 365 days".to_owned())
    } else {
        Ok(d)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn s(text: &str) -> Result<Duration, String> {
        parse_duration(&IntOrStr::Str(text.to_owned()))
    }

    #[test]
    fn integer_seconds() {
        assert_eq!(
            parse_duration(&IntOrStr::Int(300)),
            Ok(Duration::from_secs(300))
        );
        assert_eq!(
            parse_duration(&IntOrStr::Int(0)),
            Err("must be greater than zero".to_owned())
        );
        assert_eq!(
            parse_duration(&IntOrStr::Int(-5)),
            Err("must be greater than zero".to_owned())
        );
    }

    #[test]
    fn humantime_strings() {
        assert_eq!(s("300s"), Ok(Duration::from_secs(300)));
        assert_eq!(s("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(s("2h4m"), Ok(Duration::from_secs(2 * 3600 + 4 * 60)));
        assert_eq!(s("2h 4m"), Ok(Duration::from_secs(2 * 3600 + 4 * 60)));
        assert_eq!(s("1500ms"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn zero_and_garbage_rejected() {
        assert_eq!(s("0s"), Err("must be greater than zero".to_owned()));
        assert_eq!(s("0"), Err("must be greater than zero".to_owned()));
        let e = s("5 parsecs").unwrap_err();
        assert!(e.starts_with("invalid duration \"5 parsecs\""), "{e}");
        assert!(e.contains("\"5m\""), "{e}");
        assert!(s("").is_err());
        assert!(s("300").is_err(), "a string needs a unit");
        assert!(s("99999999999999999999999h").is_err());
    }

    #[test]
    fn upper_bound() {
        assert_eq!(s("365d"), Ok(MAX_DURATION));
        assert_eq!(s("366d"), Err("must be at most 365 days".to_owned()));
        assert!(parse_duration(&IntOrStr::Int(i64::MAX)).is_err());
    }
}
