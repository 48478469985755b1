//! The metrics' tables, each declared once: the operations, the classes of answer, the causes of a
//! retry, why an outbox flush stopped early, and the latency buckets' bounds. Each table is an enum whose variants carry their JSON
//! key, and a container with one value per variant (an array indexed by it, serialized as an
//! object with those keys), so no key is written twice.

use std::ops::{Index, IndexMut};

use serde::ser::{Serialize, SerializeMap, Serializer};

/// Declares a table: the enum, its `ALL` and `key`, and its container `$per<V>`.
macro_rules! table {
    (
        $(#[$meta:meta])*
        pub enum $name:ident in $per:ident {
            $( $(#[$variant_meta:meta])* $variant:ident = $key:literal, )+
        }
    ) => {
        $(#[$meta])*
        // A table grows (a new stop, a new answer class) without breaking a caller's `match`.
        #[non_exhaustive]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$variant_meta])* $variant, )+
        }

        impl $name {
            /// Every value, in the order of the JSON's keys.
            pub const ALL: [$name; [$($key),+].len()] = [$($name::$variant),+];

            /// Its key in the metrics JSON.
            pub const fn key(self) -> &'static str {
                match self {
                    $( $name::$variant => $key, )+
                }
            }
        }

        #[doc = concat!(
            "One value per [`", stringify!($name), "`], indexed by it; in JSON an object keyed ",
            "by [`", stringify!($name), "::key`], in the order of [`", stringify!($name), "::ALL`]."
        )]
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $per<V>([V; [$($key),+].len()]);

        impl<V> $per<V> {
            /// Each key with its value, in the order of the JSON.
            pub fn iter(&self) -> impl Iterator<Item = ($name, &V)> {
                $name::ALL.into_iter().zip(self.0.iter())
            }

            /// The values made by `value` from each key.
            pub(crate) fn from_fn(mut value: impl FnMut($name) -> V) -> Self {
                $per($name::ALL.map(|key| value(key)))
            }
        }

        impl<V> Index<$name> for $per<V> {
            type Output = V;
            fn index(&self, key: $name) -> &V {
                &self.0[key as usize]
            }
        }

        impl<V> IndexMut<$name> for $per<V> {
            fn index_mut(&mut self, key: $name) -> &mut V {
                &mut self.0[key as usize]
            }
        }

        impl<V: Serialize> Serialize for $per<V> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(self.0.len()))?;
                for (key, value) in self.iter() {
                    map.serialize_entry(key.key(), value)?;
                }
                map.end()
            }
        }
    };
}

table! {
    /// What a request was for: the five operations on a user status, a `$batch` of them, and a
    /// token request to an identity endpoint.
    pub enum Operation in PerOperation {
        /// A PATCH of one user status.
        Update = "update",
        /// A GET of one user status (after a 204 too, when the client reads updates back).
        Get = "get",
        /// A GET of a page of a collection.
        List = "list",
        /// A POST creating a user status.
        Create = "create",
        /// A DELETE of a user status.
        Delete = "delete",
        /// A POST of a `$batch` envelope (bulk updates, outbox flushes).
        Batch = "batch",
        /// A request to a token endpoint (client credentials, workload or managed identity).
        Token = "token",
    }
}

table! {
    /// How a request ended: Graph's answer by status, or no usable answer.
    pub enum AnswerClass in PerClass {
        /// Any 2xx.
        Success = "2xx",
        /// 400 Bad Request.
        BadRequest = "400",
        /// 401 Unauthorized.
        Unauthorized = "401",
        /// 403 Forbidden.
        Forbidden = "403",
        /// 404 Not Found.
        NotFound = "404",
        /// 409 Conflict.
        Conflict = "409",
        /// 412 Precondition Failed.
        PreconditionFailed = "412",
        /// 429 Too Many Requests.
        TooManyRequests = "429",
        /// Any other 4xx.
        OtherClientError = "otherClientError",
        /// Any 5xx.
        ServerError = "5xx",
        /// No usable answer: DNS, connection, TLS or I/O failures, a malformed response, a
        /// status outside 2xx, 4xx and 5xx (a redirect not followed).
        Transport = "transport",
        /// A timeout: the attempt's `requestMs` or the call's `totalMs` ran out.
        Timeout = "timeout",
        /// An interrupt abandoned the request in flight.
        Cancelled = "cancelled",
    }
}

impl AnswerClass {
    /// The class of an answer with HTTP status `status`.
    // The statuses with a class of their own come first; the rest of 4xx falls through to its own.
    #[allow(clippy::match_overlapping_arm)]
    pub const fn of_status(status: u16) -> AnswerClass {
        match status {
            200..=299 => AnswerClass::Success,
            400 => AnswerClass::BadRequest,
            401 => AnswerClass::Unauthorized,
            403 => AnswerClass::Forbidden,
            404 => AnswerClass::NotFound,
            409 => AnswerClass::Conflict,
            412 => AnswerClass::PreconditionFailed,
            429 => AnswerClass::TooManyRequests,
            400..=499 => AnswerClass::OtherClientError,
            500..=599 => AnswerClass::ServerError,
            _ => AnswerClass::Transport,
        }
    }
}

table! {
    /// Why the pipeline sent a request again.
    pub enum RetryCause in PerCause {
        /// Graph answered 429 (after its `Retry-After`, or the backoff).
        TooManyRequests = "429",
        /// Graph answered 503.
        ServiceUnavailable = "503",
        /// Graph answered 504.
        GatewayTimeout = "504",
        /// The connection failed before any answer.
        Transport = "transport",
        /// Graph answered 401: the token was fetched again and the request resent with it.
        TokenRefresh = "401Refresh",
    }
}

table! {
    /// Why an outbox flush stopped sending before it had worked through what was due: the flush
    /// report's `stoppedBy`, and the metrics' `flushesStopped`.
    pub enum FlushStop in PerFlushStop {
        /// The credentials were refused: the token endpoint refused them or the token source
        /// failed for good (a non-transient [`AuthError`](crate::AuthError)), or Graph answered
        /// 401 to every report of a batch (a fresh token did not cure it). Holds the outbox;
        /// logged at WARN.
        Auth = "auth",
        /// A batch got no answer at all (refused, reset, DNS, a connect timeout), or no token
        /// could be had for a while (a transient [`AuthError`](crate::AuthError): the token
        /// endpoint unreachable or failing): Graph cannot be reached now. Holds the outbox.
        Offline = "offline",
        /// Graph throttled a batch, or asked to wait longer than `retry.maxDelayMs`: the whole
        /// outbox is held back (the stats' `heldUntil`).
        Throttled = "throttled",
        /// An earlier flush's stop still holds the whole outbox back: nothing was sent.
        Held = "held",
        /// The client's own gate (its `pacing`, or the hold after a 429 another call received)
        /// could not let a batch leave within the call's budget: Graph was not asked, so nothing
        /// is held and no report counts a failure; the rest stays due.
        Paced = "paced",
        /// `flushTimeMs` ran out (the wait for another flush of the file included).
        Time = "time",
        /// An interrupt ended the flush (`Outbox::interrupt`, or its client's).
        Interrupt = "interrupt",
        /// The file could not record, before a request left, until when Graph may apply it (the
        /// write failed, or the file stayed busy past the departure slack): that request was kept
        /// back and the flush returned [`Error::Storage`](crate::Error::Storage) with its report,
        /// the round recorded; the reports not sent stay due, and nothing is held.
        Storage = "storage",
    }
}

/// The latency histogram's bucket bounds in milliseconds: a bucket holds the attempts that took
/// more than the bound before it and at most its own; one more bucket (`"+Inf"`) holds the
/// longer ones.
pub const LATENCY_BOUNDS_MS: [u64; 13] =
    [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

/// The key of the bucket above the last bound.
pub(crate) const OVERFLOW_KEY: &str = "+Inf";

/// Buckets in a latency histogram: one per bound, and the overflow.
pub(crate) const BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// The bucket of an attempt that took `micros` microseconds.
pub(crate) fn bucket_of(micros: u64) -> usize {
    LATENCY_BOUNDS_MS.partition_point(|&bound| bound * 1000 < micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_what_their_bounds_say() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1000), 0, "1 ms is in the 1 ms bucket");
        assert_eq!(bucket_of(1001), 1);
        assert_eq!(bucket_of(4_999), 2);
        assert_eq!(bucket_of(10_000_000), 12);
        assert_eq!(bucket_of(10_000_001), 13, "the overflow");
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn classes_follow_the_status() {
        assert_eq!(AnswerClass::of_status(204), AnswerClass::Success);
        assert_eq!(AnswerClass::of_status(408), AnswerClass::OtherClientError);
        assert_eq!(AnswerClass::of_status(429), AnswerClass::TooManyRequests);
        assert_eq!(AnswerClass::of_status(503), AnswerClass::ServerError);
        assert_eq!(AnswerClass::of_status(302), AnswerClass::Transport);
    }

    #[test]
    fn containers_serialize_as_objects_in_table_order() {
        let mut per = PerCause::<u64>::default();
        per[RetryCause::TokenRefresh] = 2;
        assert_eq!(
            serde_json::to_string(&per).unwrap(),
            r#"{"429":0,"503":0,"504":0,"transport":0,"401Refresh":2}"#
        );
        let mut stops = PerFlushStop::<u64>::default();
        stops[FlushStop::Auth] = 1;
        assert_eq!(
            serde_json::to_string(&stops).unwrap(),
            r#"{"auth":1,"offline":0,"throttled":0,"held":0,"paced":0,"time":0,"interrupt":0,"storage":0}"#
        );
    }
}
