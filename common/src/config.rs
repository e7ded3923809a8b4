//! Layered configuration: built-in defaults, then an optional TOML file, then
//! environment variables (`<PREFIX>_<FIELD>`, nested fields joined by `__`),
//! then overlays (command-line flags).
//!
//! Strict: every config struct denies unknown fields, so a typo in the file
//! or in a `<PREFIX>_*` variable is an error naming the key (or variable)
//! instead of a setting silently left at its default.

use std::path::Path;

use figment::Figment;
use figment::error::Kind;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::UncasedStr;
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
    /// A key in the file, or a variable with the service's prefix, names no
    /// setting.
    #[error("{0}")]
    UnknownKey(String),
}

/// Variables that start with a service prefix but belong to the `roomcast`
/// CLI (`ROOMCAST_ROUTER_URL`, standalone's `ROOMCAST_BIZ_PORT`): a shell
/// that runs both must not make a service refuse to start.
pub const CLI_VARIABLES: &[&str] = &[
    "ROOMCAST_ROUTER_URL",
    "ROOMCAST_ROUTER_PORT",
    "ROOMCAST_BIZ_URL",
    "ROOMCAST_BIZ_PORT",
];

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
    let prefix = format!("{env_prefix}_");
    let cli_prefix = prefix.clone();
    figment = figment.merge(
        Env::prefixed(&prefix)
            .filter(move |key: &UncasedStr| {
                !CLI_VARIABLES
                    .iter()
                    .any(|name| name.eq_ignore_ascii_case(&format!("{cli_prefix}{key}")))
            })
            .split("__"),
    );
    for overlay in overlays {
        figment = figment.merge(Serialized::defaults(overlay));
    }
    figment.extract().map_err(|e| describe(e, env_prefix))
}

/// One clear error: an unknown key is named the way the user wrote it (the
/// file's dotted key, or the environment variable).
fn describe(error: figment::Error, env_prefix: &str) -> ConfigError {
    let Kind::UnknownField(field, expected) = &error.kind else {
        return ConfigError::Invalid(Box::new(error));
    };
    // figment's path ends with the unknown key itself (older versions: its parent).
    let mut path = error.path.clone();
    if path.last() != Some(field) {
        path.push(field.clone());
    }
    let dotted = path.join(".");
    let expected = if expected.is_empty() {
        "it takes no keys".to_owned()
    } else {
        format!("known keys there: {}", expected.join(", "))
    };
    let source = error.metadata.as_ref().map(|m| (&m.name, &m.source));
    let text = match source {
        Some((_, Some(figment::Source::File(file)))) => format!(
            "unknown configuration key `{dotted}` in {} ({expected})",
            file.display()
        ),
        Some((name, _)) if name.contains("environment") => format!(
            "unknown environment variable {env_prefix}_{} (no configuration key `{dotted}`; {expected})",
            path.join("__").to_ascii_uppercase()
        ),
        _ => format!("unknown configuration key `{dotted}` ({expected})"),
    };
    ConfigError::UnknownKey(text)
}

#[cfg(test)]
// figment's `Jail` closures return its (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Sample {
        port: u16,
        name: String,
        node: SampleNode,
    }

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct SampleNode {
        ring_size: u32,
    }

    #[test]
    fn unknown_file_keys_are_errors_naming_the_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("typo.toml", "port = 1\n[node]\nring_sise = 5\n")?;
            let err = load::<Sample>(Some(Path::new("typo.toml")), "ROOMCAST_JAILTEST", &[])
                .expect_err("a misspelt key");
            let text = err.to_string();
            assert!(text.contains("`node.ring_sise`"), "{text}");
            assert!(text.contains("typo.toml"), "{text}");
            assert!(text.contains("ring_size"), "{text}");

            jail.create_file("top.toml", "prot = 1\n")?;
            let err = load::<Sample>(Some(Path::new("top.toml")), "ROOMCAST_JAILTEST", &[])
                .expect_err("a misspelt top-level key");
            assert!(err.to_string().contains("`prot`"), "{err}");

            jail.create_file("good.toml", "port = 1\n[node]\nring_size = 5\n")?;
            let cfg = load::<Sample>(Some(Path::new("good.toml")), "ROOMCAST_JAILTEST", &[])
                .expect("the right keys load");
            assert_eq!(cfg.node.ring_size, 5);
            Ok(())
        });
    }

    #[test]
    fn unknown_prefixed_variables_are_errors_naming_the_variable() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("ROOMCAST_JAILTEST_NODE__RING_SIZE", "7");
            jail.set_env("ROOMCAST_JAILTEST_NAME", "env");
            let cfg = load::<Sample>(None, "ROOMCAST_JAILTEST", &[]).expect("known variables");
            assert_eq!(cfg.node.ring_size, 7);
            assert_eq!(cfg.name, "env");

            // One underscore where two separate the levels.
            jail.set_env("ROOMCAST_JAILTEST_NODE_RING_SIZE", "8");
            let err = load::<Sample>(None, "ROOMCAST_JAILTEST", &[]).expect_err("unknown variable");
            let text = err.to_string();
            assert!(
                text.contains("variable ROOMCAST_JAILTEST_NODE_RING_SIZE "),
                "{text}"
            );
            Ok(())
        });
        figment::Jail::expect_with(|jail| {
            jail.set_env("ROOMCAST_JAILTEST_NODE__RING_SISE", "8");
            let err = load::<Sample>(None, "ROOMCAST_JAILTEST", &[]).expect_err("unknown variable");
            let text = err.to_string();
            assert!(text.contains("ROOMCAST_JAILTEST_NODE__RING_SISE"), "{text}");
            assert!(text.contains("ring_size"), "{text}");
            Ok(())
        });
    }

    #[test]
    fn cli_variables_sharing_a_service_prefix_are_not_settings() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("ROOMCAST_ROUTER_URL", "http://127.0.0.1:8600");
            jail.set_env("ROOMCAST_ROUTER_PORT", "8600");
            let cfg = load::<Sample>(None, "ROOMCAST_ROUTER", &[]).expect("CLI variables ignored");
            assert_eq!(cfg, Sample::default());
            Ok(())
        });
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
                ..Sample::default()
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
                name: "flag".into(),
                ..Sample::default()
            }
        );

        let missing = load::<Sample>(Some(&dir.join("nope.toml")), "ROOMCAST_TEST_UNUSED", &[]);
        assert!(matches!(missing, Err(ConfigError::MissingFile(_))));
    }
}
