//! A fast fixed-response HTTP/1.1 server for benchmarks: every request gets the same `200 OK` with a
//! deviceConfigurationUserStatus body, on kept-alive connections. It does no routing, auth or
//! storage, so a benchmark against it measures the client.
//!
//! `cargo run --release --example fixed_server [-- 127.0.0.1:0]` prints
//! `listening on http://127.0.0.1:PORT` and serves until killed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

const BODY: &str = r##"{"@odata.context":"https://graph.microsoft.com/beta/$metadata#deviceManagement/deviceConfigurations('c')/userStatuses/$entity","@odata.type":"#microsoft.graph.deviceConfigurationUserStatus","id":"bench-status","userDisplayName":"Bench User","devicesCount":3,"status":"compliant","lastReportedDateTime":"2017-01-01T00:00:17.7769392-08:00","userPrincipalName":"bench@contoso.example"}"##;

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:0".into());
    let listener = TcpListener::bind(addr)?;
    println!("listening on http://{}", listener.local_addr()?);
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nrequest-id: 00000000-0000-0000-0000-000000000000\r\nContent-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let response: &'static [u8] = Box::leak(response.into_bytes().into_boxed_slice());
    for stream in listener.incoming() {
        let stream = stream?;
        std::thread::spawn(move || serve(stream, response));
    }
    Ok(())
}

/// Answers every request on one connection until the client closes it.
fn serve(stream: TcpStream, response: &[u8]) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut body = Vec::new();
    loop {
        let mut content_length = 0usize;
        // Request line and headers, up to the blank line.
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                content_length = value.trim().parse().unwrap_or(0);
            }
        }
        body.resize(content_length, 0);
        reader.read_exact(&mut body)?;
        writer.write_all(response)?;
    }
}
