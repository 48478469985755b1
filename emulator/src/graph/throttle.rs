//! Intune-like write throttling over a sliding window: a write beyond the
//! limit is answered Graph's `429 TooManyRequests`, with `Retry-After` in
//! whole seconds unless configured off. Each request inside a `$batch`
//! counts on its own; the envelope does not count.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::message::{RequestIds, Response};
use crate::odata;
use crate::sync::lock;

/// The write throttle of one emulator (possibly unlimited).
#[derive(Debug)]
pub(crate) struct WriteThrottle {
    window: Option<Window>,
    retry_after: bool,
    /// How many writes were answered `429`.
    throttled: AtomicUsize,
}

impl WriteThrottle {
    /// At most `limit` writes per `window` (`None`: never throttles);
    /// `retry_after` says whether 429s carry `Retry-After`.
    pub(crate) fn new(limit: Option<(u32, Duration)>, retry_after: bool) -> Self {
        WriteThrottle {
            window: limit.map(|(limit, window)| Window::new(limit, window)),
            retry_after,
            throttled: AtomicUsize::new(0),
        }
    }

    /// The `429` for a write beyond the limit, or `None` to let the
    /// request through (and count it).
    pub(crate) fn check(&self, method: &str, ids: &RequestIds) -> Option<Response> {
        if !is_write(method) {
            return None;
        }
        let wait = self.window.as_ref()?.admit().err()?;
        self.throttled.fetch_add(1, Ordering::SeqCst);
        let resp = odata::error(ids, 429, "TooManyRequests", "Too many requests.");
        Some(if self.retry_after {
            // Whole seconds, rounded up: a client waiting that long finds a slot.
            let secs = wait.as_millis().div_ceil(1000).max(1);
            resp.header("Retry-After", secs.to_string())
        } else {
            resp
        })
    }

    /// How many writes were answered `429` so far.
    pub(crate) fn throttled_count(&self) -> usize {
        self.throttled.load(Ordering::SeqCst)
    }
}

/// The methods the throttle counts.
fn is_write(method: &str) -> bool {
    ["PATCH", "POST", "PUT", "DELETE"]
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method))
}

/// A sliding window of admitted writes.
#[derive(Debug)]
struct Window {
    limit: u32,
    length: Duration,
    /// When each write still inside the window was admitted, oldest first.
    admitted: Mutex<VecDeque<Instant>>,
}

impl Window {
    fn new(limit: u32, length: Duration) -> Self {
        Window {
            limit,
            length,
            admitted: Mutex::new(VecDeque::new()),
        }
    }

    /// Admits one write now, or says how long until a slot frees.
    fn admit(&self) -> Result<(), Duration> {
        let now = Instant::now();
        let mut admitted = lock(&self.admitted);
        while admitted
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.length)
        {
            admitted.pop_front();
        }
        if admitted.len() < self.limit as usize {
            admitted.push_back(now);
            return Ok(());
        }
        Err(match admitted.front() {
            Some(oldest) => (*oldest + self.length).saturating_duration_since(now),
            None => self.length,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_slides() {
        let t = Window::new(2, Duration::from_millis(50));
        assert!(t.admit().is_ok());
        assert!(t.admit().is_ok());
        let wait = t.admit().unwrap_err();
        assert!(wait <= Duration::from_millis(50));
        std::thread::sleep(Duration::from_millis(60));
        assert!(t.admit().is_ok());
    }

    #[test]
    fn reads_are_never_throttled() {
        let t = WriteThrottle::new(Some((1, Duration::from_secs(20))), true);
        let ids = RequestIds::new(None);
        assert!(t.check("PATCH", &ids).is_none());
        assert!(t.check("GET", &ids).is_none());
        let resp = t.check("patch", &ids).unwrap();
        assert_eq!(resp.status, 429);
        assert!(
            resp.headers
                .contains(&("Retry-After".to_owned(), "20".to_owned()))
        );
        assert_eq!(t.throttled_count(), 1);
    }
}
