//! Layered configuration: built-in defaults, then an optional TOML file, then
//! environment variables (`<PREFIX>_<FIELD>`, nested fields joined by `__`),
//! then overlays (command-line flags).

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named on the command line does not exist.
    #[error("config file {0} does not exist")]
    MissingFile(String),
    /// A value is malformed or of the wrong type.
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
}

/// Load `T` from its `Default`, the optional TOML `file`, the environment,
/// and `overlays` in order (later wins).
pub fn load<T>(
    file: Option<&Path>,
    env_prefix: &str,
    overlays: &[serde_json::Value],
) -> Result<T, ConfigError>
where
    T: Serialize + DeserializeOwned + Default,
{
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::MissingFile(path.display().to_string()));
        }
        figment = figment.merge(Toml::file(path));
    }
    figment = figment.merge(Env::prefixed(&format!("{env_prefix}_")).split("__"));
    for overlay in overlays {
        figment = figment.merge(Serialized::defaults(overlay));
    }
    figment
        .extract()
        .map_err(|e| ConfigError::Invalid(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    struct Sample {
        port: u16,
        name: String,
    }

    #[test]
    fn file_overrides_defaults_and_bad_values_are_errors() {
        let dir = std::env::temp_dir().join(format!("roomcast-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let good = dir.join("good.toml");
        std::fs::write(&good, "port = 9000\n").expect("write");
        let cfg: Sample = load(Some(&good), "ROOMCAST_TEST_UNUSED", &[]).expect("loads");
        assert_eq!(
            cfg,
            Sample {
                port: 9000,
                name: String::new()
            }
        );

        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "port = \"many\"\n").expect("write");
        let err = load::<Sample>(Some(&bad), "ROOMCAST_TEST_UNUSED", &[]).expect_err("bad type");
        assert!(err.to_string().contains("port"), "{err}");

        let flagged: Sample = load(
            Some(&good),
            "ROOMCAST_TEST_UNUSED",
            &[serde_json::json!({ "name": "flag" })],
        )
        .expect("loads");
        assert_eq!(
            flagged,
            Sample {
                port: 9000,
                name: "flag".into()
            }
        );

        let missing = load::<Sample>(Some(&dir.join("nope.toml")), "ROOMCAST_TEST_UNUSED", &[]);
        assert!(matches!(missing, Err(ConfigError::MissingFile(_))));
    }
}
