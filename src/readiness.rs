//! Whether a socket has something to read, waiting for it up to a time: `poll` on Unix,
//! `WSAPoll` on Windows, side by side.
//!
//! `tcp.rs` waits for a response this way, in slices, instead of reading with a receive timeout
//! (SO_RCVTIMEO): Microsoft documents that after a receive times out the socket's state is
//! indeterminate and it should not be used, and a read in slices times out again and again. A
//! read then happens only once the socket is readable, so it never times out. Unix takes the same
//! path: one way to wait on every platform, one system call per slice as before, and a pooled
//! connection's check (`is_open`) is one call instead of three.
//!
//! The system calls need `unsafe`, which the crate allows only in `ffi` and here, each call with
//! its reason beside it.

use std::io;
use std::net::TcpStream;
use std::time::Duration;

/// What the socket is ready for, as far as a wait could tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ready {
    /// A read returns at once: data, the end of the stream, or the socket's error.
    Readable,
    /// Nothing came within the time (or a signal ended the wait early: the caller waits again).
    NotYet,
}

/// Waits up to `within` (rounded up to whole milliseconds, so a short wait never spins) until
/// `stream` is readable; zero only looks.
pub(crate) fn wait_readable(stream: &TcpStream, within: Duration) -> io::Result<Ready> {
    let millis = within.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
    poll_readable(stream, millis)
}

#[cfg(unix)]
fn poll_readable(stream: &TcpStream, millis: i32) -> io::Result<Ready> {
    use std::os::fd::AsRawFd;
    let mut fd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `fd` is one valid pollfd for the call, and the descriptor is open: `stream` is
    // borrowed for the call.
    #[allow(unsafe_code)]
    let ready = unsafe { libc::poll(&mut fd, 1, millis) };
    match ready {
        0 => Ok(Ready::NotYet),
        // POLLIN, or POLLHUP/POLLERR: a read reports the end or the error.
        n if n > 0 => Ok(Ready::Readable),
        _ => match io::Error::last_os_error() {
            err if err.kind() == io::ErrorKind::Interrupted => Ok(Ready::NotYet),
            err => Err(err),
        },
    }
}

#[cfg(windows)]
fn poll_readable(stream: &TcpStream, millis: i32) -> io::Result<Ready> {
    use std::os::windows::io::AsRawSocket;
    use windows_sys::Win32::Networking::WinSock::{
        POLLRDNORM, WSAGetLastError, WSAPOLLFD, WSAPoll,
    };
    let mut fd = WSAPOLLFD {
        fd: stream.as_raw_socket() as usize,
        events: POLLRDNORM,
        revents: 0,
    };
    // SAFETY: `fd` is one valid WSAPOLLFD for the call, and the socket is open: `stream` is
    // borrowed for the call (and its existence means WinSock was started).
    #[allow(unsafe_code)]
    let ready = unsafe { WSAPoll(&mut fd, 1, millis) };
    match ready {
        0 => return Ok(Ready::NotYet),
        // POLLRDNORM, or POLLHUP/POLLERR: a read reports the end or the error.
        n if n > 0 => return Ok(Ready::Readable),
        _ => {}
    }
    // SAFETY: reads the calling thread's last WinSock error, nothing else.
    #[allow(unsafe_code)]
    let code = unsafe { WSAGetLastError() };
    Err(io::Error::from_raw_os_error(code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;
    use std::time::Instant;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (theirs, _) = listener.accept().unwrap();
        (ours, theirs)
    }

    /// Nothing to read: the wait lasts its time; data or the peer's close makes it readable.
    #[test]
    fn readable_once_data_or_the_end_arrives() {
        let (ours, mut theirs) = pair();
        assert_eq!(wait_readable(&ours, Duration::ZERO).unwrap(), Ready::NotYet);
        let started = Instant::now();
        let ready = wait_readable(&ours, Duration::from_millis(60)).unwrap();
        assert_eq!(ready, Ready::NotYet);
        assert!(
            started.elapsed() >= Duration::from_millis(55),
            "{:?}",
            started.elapsed()
        );
        theirs.write_all(b"x").unwrap();
        let ready = wait_readable(&ours, Duration::from_secs(5)).unwrap();
        assert_eq!(ready, Ready::Readable);
        let (ours, theirs) = pair();
        drop(theirs);
        let ready = wait_readable(&ours, Duration::from_secs(5)).unwrap();
        assert_eq!(ready, Ready::Readable);
    }
}
