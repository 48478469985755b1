//! Workload identity federation: the emulator plays the OIDC issuer (a
//! Kubernetes cluster, GitHub Actions) that mints the platform's tokens, and
//! checks them when a client exchanges one at the token endpoint as its
//! `client_assertion`, as Entra ID checks a federated identity credential.
//!
//! A minted token is a JWT with `iss`, `sub`, `aud`
//! (`["api://AzureADTokenExchange"]`), `iat`, `nbf`, `exp` and `jti`. Its
//! signature is random bytes: the emulator knows the tokens it minted, which
//! stands in for checking them against the issuer's published keys (and so
//! for the audience, which it always sets). The checks, in order:
//!
//! | condition | `error` | code |
//! |---|---|---|
//! | not a JWT the emulator minted | `invalid_client` | 700027 |
//! | no federated credential of the app has the token's `iss` | `invalid_client` | 700211 |
//! | none has the token's `iss` and `sub` | `invalid_client` | 700213 |
//! | expired | `invalid_client` | 700024 |
//!
//! Every rejection is a 401, like Entra's.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::sync::lock;

/// The audience Entra ID requires of a federated token.
pub const TOKEN_EXCHANGE_AUDIENCE: &str = "api://AzureADTokenExchange";

/// The issuer the binary's `--federated` registers, and the admin endpoint
/// mints for when no issuer is given.
pub const DEFAULT_ISSUER: &str = "https://oidc.ius-emulator.invalid";

/// A federated identity credential of an app registration: the platform
/// tokens it accepts in exchange for access tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FederatedCredential {
    /// The tenant of the app (compared case-insensitively).
    pub tenant: String,
    /// The app's client id (compared case-insensitively). The app need not
    /// be in [`crate::Config::apps`]: one with only federated credentials
    /// is registered by this.
    pub client_id: String,
    /// The token issuer, e.g. `https://oidc.prod-aks.azure.com/{guid}/`
    /// (compared exactly).
    pub issuer: String,
    /// The token subject, e.g. `system:serviceaccount:agents:intune-agent`
    /// (compared exactly).
    pub subject: String,
}

/// The tokens minted so far.
#[derive(Debug, Default)]
pub(crate) struct Issuer {
    minted: Mutex<HashSet<String>>,
}

/// Why a federated token was refused: the AADSTS code and its description.
pub(crate) type Refusal = (u32, String);

impl Issuer {
    /// A token from `issuer` about `subject`, valid for `lifetime` from now.
    pub(crate) fn mint(&self, issuer: &str, subject: &str, lifetime: Duration) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let exp = now.saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX));
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": "ius-emulator-oidc"});
        let claims = json!({
            "aud": [TOKEN_EXCHANGE_AUDIENCE],
            "iss": issuer,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": exp,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        let signature = [
            uuid::Uuid::new_v4().into_bytes(),
            uuid::Uuid::new_v4().into_bytes(),
        ]
        .concat();
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode(signature)
        );
        lock(&self.minted).insert(token.clone());
        token
    }

    /// Checks `jwt` against the app's federated credentials (issuer, subject).
    pub(crate) fn verify<'a>(
        &self,
        jwt: &str,
        credentials: impl Iterator<Item = &'a FederatedCredential> + Clone,
    ) -> Result<(), Refusal> {
        if !lock(&self.minted).contains(jwt) {
            return Err((
                700_027,
                "Client assertion failed signature validation. [Reason - The federated token was not issued by a known issuer, or its signature does not match the issuer's keys.]".to_owned(),
            ));
        }
        let claims = part(jwt, 1).unwrap_or_default();
        let text = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or_default();
        let (iss, sub) = (text("iss"), text("sub"));
        if !credentials.clone().any(|c| c.issuer == iss) {
            return Err((
                700_211,
                format!(
                    "No matching federated identity record found for presented assertion issuer '{iss}'."
                ),
            ));
        }
        if !credentials
            .into_iter()
            .any(|c| c.issuer == iss && c.subject == sub)
        {
            return Err((
                700_213,
                format!(
                    "No matching federated identity record found for presented assertion subject '{sub}'."
                ),
            ));
        }
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        if exp <= now {
            return Err((
                700_024,
                format!(
                    "Client assertion is not within its valid time range. Current time: {now}, expiry time of assertion {exp}."
                ),
            ));
        }
        Ok(())
    }
}

/// Whether a JWT's header names the certificate that signed it (an app's
/// own client assertion does; a platform's token does not).
pub(crate) fn names_a_certificate(jwt: &str) -> bool {
    part(jwt, 0).is_some_and(|header| header.contains_key("x5t#S256") || header.contains_key("x5t"))
}

/// The JSON object in part `n` (0: header, 1: claims) of a JWT.
fn part(jwt: &str, n: usize) -> Option<serde_json::Map<String, Value>> {
    let encoded = jwt.split('.').nth(n)?;
    match serde_json::from_slice(&URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(issuer: &str, subject: &str) -> FederatedCredential {
        FederatedCredential {
            tenant: "t".into(),
            client_id: "c".into(),
            issuer: issuer.into(),
            subject: subject.into(),
        }
    }

    #[test]
    fn minted_tokens_pass_and_each_mismatch_has_its_code() {
        let issuer = Issuer::default();
        let registered = [credential("https://iss", "sub-1")];
        let hour = Duration::from_secs(3600);
        let ok = issuer.mint("https://iss", "sub-1", hour);
        assert_eq!(issuer.verify(&ok, registered.iter()), Ok(()));
        let code = |jwt: &str| issuer.verify(jwt, registered.iter()).unwrap_err().0;
        assert_eq!(code(&ok.replace('.', ".x")), 700_027);
        assert_eq!(code(&issuer.mint("https://other", "sub-1", hour)), 700_211);
        assert_eq!(code(&issuer.mint("https://iss", "sub-2", hour)), 700_213);
        assert_eq!(
            code(&issuer.mint("https://iss", "sub-1", Duration::ZERO)),
            700_024
        );
        assert_eq!(part(&ok, 1).unwrap()["sub"], "sub-1");
        assert!(!names_a_certificate(&ok));
    }
}
