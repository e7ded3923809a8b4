//! Keeping secrets out of `--print-config` and logs: settings whose name says
//! they are secret (`*secret*`, `*password*`, `*token*`, `*api_key*`, …) show
//! as [`REDACTED`], and the password of any URL (`redis://:pw@host`) too.

use std::fmt;

use serde::Serialize;

/// What is shown in place of a secret.
pub const REDACTED: &str = "<redacted>";

/// What logs and `--print-config` show of a secret: nothing when unset (so an
/// operator sees it is missing), [`REDACTED`] otherwise.
pub fn redacted(secret: &str) -> &'static str {
    if secret.is_empty() { "" } else { REDACTED }
}

/// Whether a setting named `key` holds a secret. Words are `_`/`-`
/// separated; a name about a public key (`token_eddsa_public_pem`) is not
/// secret.
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let words: Vec<&str> = key.split(['_', '-', '.']).collect();
    if words.contains(&"public") {
        return false;
    }
    let secret_word = |w: &&str| {
        matches!(
            *w,
            "secret"
                | "secrets"
                | "password"
                | "passwords"
                | "passwd"
                | "token"
                | "tokens"
                | "apikey"
                | "apikeys"
                | "credential"
                | "credentials"
                | "private"
        )
    };
    words.iter().any(secret_word)
        || words
            .windows(2)
            .any(|pair| pair[0] == "api" && pair[1].starts_with("key"))
}

/// `url` with the password of its user info replaced by [`REDACTED`]
/// (`redis://user:pw@host/0` → `redis://user:<redacted>@host/0`); any other
/// string unchanged.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest_start = scheme_end + 3;
    let rest = &url[rest_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let user_info = &authority[..at];
    let Some(colon) = user_info.find(':') else {
        return url.to_owned();
    };
    format!(
        "{}{}{REDACTED}{}",
        &url[..rest_start],
        &user_info[..=colon],
        &rest[at..]
    )
}

/// Redact a serialized configuration in place: values under secret keys
/// (strings, and strings inside lists or tables), and URL passwords anywhere.
pub fn redact_toml(value: &mut toml::Value) {
    redact_in(value, false);
}

fn redact_in(value: &mut toml::Value, secret: bool) {
    match value {
        toml::Value::String(s) if secret => *s = redacted(s).to_owned(),
        toml::Value::String(s) if s.contains('@') => *s = redact_url(s),
        toml::Value::Array(items) => items.iter_mut().for_each(|v| redact_in(v, secret)),
        toml::Value::Table(table) => {
            for (key, v) in table.iter_mut() {
                redact_in(v, secret || is_secret_key(key));
            }
        }
        _ => {}
    }
}

/// `cfg` as TOML with its secrets redacted (for `--print-config`).
pub fn to_redacted_toml<T: Serialize>(cfg: &T) -> Result<String, toml::ser::Error> {
    let mut value = toml::Value::try_from(cfg)?;
    redact_toml(&mut value);
    toml::to_string_pretty(&value)
}

/// A `Debug` rendering of a configuration with its secrets redacted, for
/// `impl Debug` of config types: every field, present and future, goes
/// through the same rules as `--print-config`.
pub fn fmt_config<T: Serialize>(cfg: &T, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    match toml::Value::try_from(cfg) {
        Ok(mut value) => {
            redact_toml(&mut value);
            write!(f, "{name} {value}")
        }
        Err(_) => write!(f, "{name} {{ .. }}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_are_recognised_and_others_are_not() {
        for key in [
            "token_secret",
            "admin_token",
            "password",
            "redis_password",
            "api_key",
            "api_keys",
            "apikey",
            "internal-token",
            "private_key_path",
        ] {
            assert!(is_secret_key(key), "{key} should be secret");
        }
        for key in [
            "token_eddsa_public_pem",
            "node_id",
            "urls",
            "max_connections",
            "key_prefix",
            "tokenizer",
        ] {
            assert!(!is_secret_key(key), "{key} should not be secret");
        }
    }

    #[test]
    fn url_passwords_are_redacted_and_the_rest_is_kept() {
        assert_eq!(
            redact_url("redis://:s3cret@cache:6379/0"),
            "redis://:<redacted>@cache:6379/0"
        );
        assert_eq!(
            redact_url("rediss://default:p@ss@cache:6380"),
            "rediss://default:<redacted>@cache:6380"
        );
        assert_eq!(
            redact_url("postgres://app:pw@db/rooms?sslmode=require"),
            "postgres://app:<redacted>@db/rooms?sslmode=require"
        );
        for plain in [
            "redis://127.0.0.1:6379",
            "redis://user@host",
            "alice@example.com",
            "http://host/path@x",
        ] {
            assert_eq!(redact_url(plain), plain);
        }
    }

    #[derive(Serialize)]
    struct Nested {
        token_secret: String,
        empty_token: String,
        urls: Vec<String>,
        credentials: Vec<String>,
        public: String,
    }

    #[derive(Serialize)]
    struct Sample {
        listen: String,
        node: Nested,
    }

    fn sample() -> Sample {
        Sample {
            listen: "0.0.0.0:1".into(),
            node: Nested {
                token_secret: "hunter2".into(),
                empty_token: String::new(),
                urls: vec!["redis://:hunter3@r1:6379".into(), "redis://r2:6379".into()],
                credentials: vec!["hunter4".into()],
                public: "shown".into(),
            },
        }
    }

    #[test]
    fn printed_configs_hide_secrets_and_keep_everything_else() {
        let text = to_redacted_toml(&sample()).expect("renders");
        for secret in ["hunter2", "hunter3", "hunter4"] {
            assert!(!text.contains(secret), "{secret} leaked:\n{text}");
        }
        assert!(text.contains("token_secret = \"<redacted>\""), "{text}");
        assert!(text.contains("empty_token = \"\""), "{text}");
        assert!(text.contains("redis://:<redacted>@r1:6379"), "{text}");
        assert!(text.contains("redis://r2:6379"), "{text}");
        assert!(text.contains("public = \"shown\""), "{text}");
        assert!(text.contains("listen = \"0.0.0.0:1\""), "{text}");
    }

    #[test]
    fn debug_rendering_hides_secrets() {
        struct Shown(Sample);
        impl fmt::Debug for Shown {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt_config(&self.0, "Sample", f)
            }
        }
        let text = format!("{:?}", Shown(sample()));
        assert!(!text.contains("hunter"), "{text}");
        assert!(text.starts_with("Sample "), "{text}");
        assert!(text.contains("0.0.0.0:1"), "{text}");
    }
}
