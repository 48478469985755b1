//! One write per request: the request head and a small body leave in one segment.
//!
//! ureq hands the transport the head and then the body in two writes, so a PATCH goes out as two
//! TCP segments (two TLS records over https) and the server wakes twice for it. This layer sits
//! on top of ureq's transports and only delays: what ureq writes stays in the transport's own
//! output buffer until ureq waits for the answer (or the buffer is half full), then goes out in
//! one write. The bytes on the wire are the same.

use std::fmt;

use ureq::Error;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, Transport,
};

/// Wraps the connection the connectors before it made (plain TCP, a proxy tunnel or TLS).
#[derive(Debug, Default)]
pub(crate) struct CoalescingConnector;

impl<In: Transport> Connector<In> for CoalescingConnector {
    type Out = Coalescing<In>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, Error> {
        let config = details.config;
        Ok(chained.map(|inner| Coalescing {
            inner,
            buffers: LazyBuffers::new(config.input_buffer_size(), config.output_buffer_size()),
            pending: 0,
            timeout: None,
        }))
    }
}

/// A transport whose writes wait in its own output buffer until the next read.
///
/// ureq reaches a transport's buffers only through `&mut` and reads the input through `&`, so this
/// layer keeps buffers of its own (sized as ureq's) and copies to and from the inner transport's.
pub(crate) struct Coalescing<T> {
    inner: T,
    buffers: LazyBuffers,
    /// Bytes at the start of `buffers`' output not yet handed to `inner`.
    pending: usize,
    /// The timeout of the latest write, which the delayed send keeps.
    timeout: Option<NextTimeout>,
}

impl<T: Transport> fmt::Debug for Coalescing<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coalescing")
            .field("inner", &self.inner)
            .field("pending", &self.pending)
            .finish()
    }
}

impl<T: Transport> Coalescing<T> {
    /// Hands everything pending to the inner transport, in as few writes as its buffer allows.
    fn flush(&mut self) -> Result<(), Error> {
        let Some(timeout) = self.timeout.take() else {
            return Ok(());
        };
        let mut sent = 0;
        while sent < self.pending {
            let out = self.inner.buffers().output();
            let amount = out.len().min(self.pending - sent);
            out[..amount].copy_from_slice(&self.buffers.output()[sent..sent + amount]);
            self.inner.transmit_output(amount, timeout)?;
            sent += amount;
        }
        self.pending = 0;
        Ok(())
    }
}

impl<T: Transport> Transport for Coalescing<T> {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        self.pending += amount;
        self.timeout = Some(timeout);
        // Keep at least half the buffer free for what ureq writes next (a head must fit whole).
        if self.pending * 2 >= self.buffers.output().len() {
            self.flush()?;
        }
        Ok(())
    }

    fn maybe_await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        self.flush()?;
        if self.buffers.can_use_input() {
            return Ok(true);
        }
        self.await_input(timeout)
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        self.flush()?;
        // What the inner transport read and this one had no room for is taken before reading more.
        if self.inner.buffers().input().is_empty() && !self.inner.await_input(timeout)? {
            return Ok(false);
        }
        let input = self.inner.buffers().input();
        let room = self.buffers.input_append_buf();
        let amount = input.len().min(room.len());
        room[..amount].copy_from_slice(&input[..amount]);
        self.buffers.input_appended(amount);
        self.inner.buffers().input_consume(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.inner.is_open()
    }

    fn is_tls(&self) -> bool {
        self.inner.is_tls()
    }
}

/// This transport's own buffers, with the output starting after the bytes not yet sent.
impl<T: Transport> Buffers for Coalescing<T> {
    fn output(&mut self) -> &mut [u8] {
        &mut self.buffers.output()[self.pending..]
    }

    fn input(&self) -> &[u8] {
        self.buffers.input()
    }

    fn input_append_buf(&mut self) -> &mut [u8] {
        self.buffers.input_append_buf()
    }

    fn input_appended(&mut self, amount: usize) {
        self.buffers.input_appended(amount)
    }

    fn input_consume(&mut self, amount: usize) {
        self.buffers.input_consume(amount)
    }

    fn tmp_and_output(&mut self) -> (&mut [u8], &mut [u8]) {
        let (tmp, output) = self.buffers.tmp_and_output();
        (tmp, &mut output[self.pending..])
    }

    fn can_use_input(&self) -> bool {
        self.buffers.can_use_input()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    use ureq::Agent;
    use ureq::unversioned::resolver::DefaultResolver;
    use ureq::unversioned::transport::DefaultConnector;

    use super::*;

    /// Records the size of every write handed to the transport below it (the TCP socket).
    #[derive(Debug, Default, Clone)]
    struct CountingConnector(Arc<Mutex<Vec<usize>>>);

    #[derive(Debug)]
    struct Counting<T> {
        inner: T,
        writes: Arc<Mutex<Vec<usize>>>,
    }

    impl<In: Transport> Connector<In> for CountingConnector {
        type Out = Counting<In>;

        fn connect(
            &self,
            _details: &ConnectionDetails,
            chained: Option<In>,
        ) -> Result<Option<Self::Out>, Error> {
            Ok(chained.map(|inner| Counting {
                inner,
                writes: Arc::clone(&self.0),
            }))
        }
    }

    impl<T: Transport> Transport for Counting<T> {
        fn buffers(&mut self) -> &mut dyn Buffers {
            self.inner.buffers()
        }
        fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
            self.writes.lock().unwrap().push(amount);
            self.inner.transmit_output(amount, timeout)
        }
        fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
            self.inner.await_input(timeout)
        }
        fn is_open(&mut self) -> bool {
            self.inner.is_open()
        }
    }

    /// A server that answers one request 204, and the bytes it received.
    fn server() -> (String, std::thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/beta/x", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut received = Vec::new();
            let mut length = 0;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                received.extend_from_slice(line.as_bytes());
                if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap();
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            received.extend_from_slice(&body);
            (&stream)
                .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            received
        });
        (url, handle)
    }

    /// One PATCH through an agent whose connectors are TCP, the counter, then `layer`; the sizes
    /// of the socket writes and the bytes the server received.
    fn patch_through<C: Connector<Counting<<DefaultConnector as Connector>::Out>>>(
        layer: C,
    ) -> (Vec<usize>, Vec<u8>) {
        let counter = CountingConnector::default();
        let agent = Agent::with_parts(
            Agent::config_builder().build(),
            DefaultConnector::new().chain(counter.clone()).chain(layer),
            DefaultResolver::default(),
        );
        let (url, server) = server();
        agent
            .patch(&url)
            .header("Content-Type", "application/json")
            .send(&br#"{"devicesCount":3}"#[..])
            .unwrap();
        let received = server.join().unwrap();
        let writes = counter.0.lock().unwrap().clone();
        (writes, received)
    }

    /// A connector that adds nothing: the chain without coalescing, for comparison.
    #[derive(Debug)]
    struct Nothing;

    impl<In: Transport> Connector<In> for Nothing {
        type Out = In;
        fn connect(&self, _: &ConnectionDetails, chained: Option<In>) -> Result<Option<In>, Error> {
            Ok(chained)
        }
    }

    #[test]
    fn the_head_and_body_of_a_request_leave_in_one_write() {
        let (writes, received) = patch_through(CoalescingConnector);
        assert_eq!(writes, [received.len()], "one socket write, all of it");
        assert!(received.ends_with(br#"{"devicesCount":3}"#));
        // Without this layer ureq writes the head and the body apart: the count above is the
        // layer's doing, not the test's.
        let (writes, received) = patch_through(Nothing);
        assert_eq!(writes.len(), 2, "{writes:?}");
        assert_eq!(writes.iter().sum::<usize>(), received.len());
    }
}
