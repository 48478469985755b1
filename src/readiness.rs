//! Whether a socket has something to read, or room to write, waiting for it up to a time: `poll`
//! on Unix, `WSAPoll` on Windows, side by side.
//!
//! `tcp.rs` waits for a response this way, in slices, instead of reading with a receive timeout
//! (SO_RCVTIMEO): Microsoft documents that after a receive times out the socket's state is
//! indeterminate and it should not be used, and a read in slices times out again and again. A
//! read then happens only once the socket is readable, so it never times out. Its writes wait for
//! room the same way, in slices, instead of a send timeout (SO_SNDTIMEO): a write a shutdown does
//! not wake (Windows) still ends at an interrupt. Unix takes the same path: one way to wait on
//! every platform, and a pooled connection's check (`is_open`) is one call instead of three.
//!
//! The system calls need `unsafe`, which the crate allows only in `ffi` and here, each call with
//! its reason beside it.

use std::io;
use std::net::TcpStream;
use std::time::Duration;

/// What the socket is ready for, as far as a wait could tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ready {
    /// A read (or write) returns at once: data (room), the end of the stream, or the socket's
    /// error.
    Ready,
    /// Nothing came within the time (or a signal ended the wait early: the caller waits again).
    NotYet,
}

/// What a wait is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum For {
    Read,
    Write,
}

/// Waits up to `within` (rounded up to whole milliseconds, so a short wait never spins) until
/// `stream` is readable; zero only looks.
pub(crate) fn wait_readable(stream: &TcpStream, within: Duration) -> io::Result<Ready> {
    poll(stream, For::Read, millis(within))
}

/// Waits up to `within`, as [`wait_readable`], until `stream` has room for a write.
pub(crate) fn wait_writable(stream: &TcpStream, within: Duration) -> io::Result<Ready> {
    poll(stream, For::Write, millis(within))
}

fn millis(within: Duration) -> i32 {
    within.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32
}

#[cfg(unix)]
fn poll(stream: &TcpStream, wait: For, millis: i32) -> io::Result<Ready> {
    use std::os::fd::AsRawFd;
    let mut fd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: match wait {
            For::Read => libc::POLLIN,
            For::Write => libc::POLLOUT,
        },
        revents: 0,
    };
    // SAFETY: `fd` is one valid pollfd for the call, and the descriptor is open: `stream` is
    // borrowed for the call.
    #[allow(unsafe_code)]
    let ready = unsafe { libc::poll(&mut fd, 1, millis) };
    match ready {
        0 => Ok(Ready::NotYet),
        // POLLIN or POLLOUT, or POLLHUP/POLLERR: the I/O reports the end or the error.
        n if n > 0 => Ok(Ready::Ready),
        _ => match io::Error::last_os_error() {
            err if err.kind() == io::ErrorKind::Interrupted => Ok(Ready::NotYet),
            err => Err(err),
        },
    }
}

#[cfg(windows)]
fn poll(stream: &TcpStream, wait: For, millis: i32) -> io::Result<Ready> {
    use std::os::windows::io::AsRawSocket;
    use windows_sys::Win32::Networking::WinSock::{
        POLLRDNORM, POLLWRNORM, WSAGetLastError, WSAPOLLFD, WSAPoll,
    };
    let mut fd = WSAPOLLFD {
        fd: stream.as_raw_socket() as usize,
        events: match wait {
            For::Read => POLLRDNORM,
            For::Write => POLLWRNORM,
        },
        revents: 0,
    };
    // SAFETY: `fd` is one valid WSAPOLLFD for the call, and the socket is open: `stream` is
    // borrowed for the call (and its existence means WinSock was started).
    #[allow(unsafe_code)]
    let ready = unsafe { WSAPoll(&mut fd, 1, millis) };
    match ready {
        0 => return Ok(Ready::NotYet),
        // POLLRDNORM or POLLWRNORM, or POLLHUP/POLLERR: the I/O reports the end or the error.
        n if n > 0 => return Ok(Ready::Ready),
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
        assert_eq!(ready, Ready::Ready);
        let (ours, theirs) = pair();
        drop(theirs);
        let ready = wait_readable(&ours, Duration::from_secs(5)).unwrap();
        assert_eq!(ready, Ready::Ready);
    }

    /// Room to write until the peer, reading nothing, lets the buffers fill; then none within
    /// the wait, and room again once it reads.
    #[test]
    fn writable_until_the_buffers_fill() {
        use std::io::Read;
        let (ours, mut theirs) = pair();
        assert_eq!(wait_writable(&ours, Duration::ZERO).unwrap(), Ready::Ready);
        ours.set_nonblocking(true).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        let mut written = 0usize;
        // Until no room comes for a while: loopback moves data on, and the peer's receive buffer
        // grows, for a moment after the first write that finds none.
        loop {
            match (&ours).write(&chunk) {
                Ok(n) => written += n,
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                    if wait_writable(&ours, Duration::from_millis(200)).unwrap() == Ready::NotYet {
                        break;
                    }
                }
                Err(err) => panic!("{err}"),
            }
            assert!(written < 1 << 30, "the buffers never filled");
        }
        let started = Instant::now();
        let ready = wait_writable(&ours, Duration::from_millis(60)).unwrap();
        assert_eq!(ready, Ready::NotYet);
        assert!(started.elapsed() >= Duration::from_millis(55));
        let mut sink = vec![0u8; 1 << 20];
        let mut read = 0usize;
        while read < written {
            read += theirs.read(&mut sink).unwrap();
            if wait_writable(&ours, Duration::ZERO).unwrap() == Ready::Ready {
                return;
            }
        }
        panic!("no room after the peer read everything");
    }
}
