//! Durations written the way people write them ("30s", "5m", "1h 30m").

use std::{borrow::Cow, fmt, str::FromStr, time::Duration};

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A [`Duration`] that reads and writes as a humantime string such as `"30s"` or `"10m"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    pub const fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl FromStr for HumanDuration {
    type Err = humantime::DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s).map(Self)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(|err| {
            serde::de::Error::custom(format!(
                "`{text}` is not a duration ({err}); write it like \"30s\", \"5m\" or \"1h 30m\""
            ))
        })
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A duration such as \"30s\", \"5m\" or \"1h 30m\" (units: ms, s, m, h, d).",
            "pattern": r"^\s*[0-9]+\s*(ms|s|sec|m|min|h|hr|d)(\s*[0-9]+\s*(ms|s|sec|m|min|h|hr|d))*\s*$",
            "examples": ["30s", "5m", "1h 30m"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_humantime_strings() {
        let d: HumanDuration = "1h 30m".parse().unwrap();
        assert_eq!(d.get(), Duration::from_secs(5400));
        assert_eq!(d.to_string(), "1h 30m");
    }

    #[test]
    fn rejects_bare_numbers_with_a_hint() {
        let err = serde_json::from_str::<HumanDuration>("\"30\"").unwrap_err();
        assert!(err.to_string().contains("write it like"), "{err}");
    }
}
