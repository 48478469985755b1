//! What the emulator's HTTP tests share: one request through ureq, and the
//! response read in full.

// Each test crate uses a part of this.
#![allow(dead_code)]

use serde_json::Value;

/// A response read in full.
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics, showing it, if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// A ureq agent that returns every status as a response, not an error.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// Sends one request to an absolute `url` with these headers, and a body
/// as `application/json` when given; any status is a response.
pub fn request(method: &str, url: &str, body: Option<&str>, headers: &[(&str, &str)]) -> Resp {
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let agent = agent();
    let mut resp = match body {
        Some(b) => agent
            .run(
                req.header("Content-Type", "application/json")
                    .body(b.to_owned())
                    .unwrap(),
            )
            .unwrap(),
        None => agent.run(req.body(()).unwrap()).unwrap(),
    };
    Resp {
        status: resp.status().as_u16(),
        headers: resp
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: resp.body_mut().read_to_string().unwrap(),
    }
}
