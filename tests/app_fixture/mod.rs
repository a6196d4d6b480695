//! An application fixture: a JSON API on 127.0.0.1 that pages its records
//! (`?cursor=pN`, `next_cursor` in the body), requires a bearer token, and
//! can be told to fail a page.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

/// The application's state.
#[derive(Debug, Default)]
pub struct App {
    /// Records per page.
    pub pages: Vec<Value>,
    /// The bearer token it accepts.
    pub token: String,
    /// Answer this page with HTTP 500.
    pub fail_page: Option<usize>,
    /// Requests served.
    pub calls: u64,
}

/// Serves `app` until the process exits; returns the port.
pub fn serve(app: Arc<Mutex<App>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let app = app.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                let mut auth = String::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':')
                        && k.eq_ignore_ascii_case("authorization")
                    {
                        auth = v.trim().to_string();
                    }
                }
                let (status, body) = {
                    let mut a = app.lock().expect("app");
                    a.calls += 1;
                    let page: usize = path
                        .split("cursor=p")
                        .nth(1)
                        .and_then(|c| c.split('&').next())
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(0);
                    if auth != format!("Bearer {}", a.token) {
                        (401, json!({"error": "unauthorized"}))
                    } else if a.fail_page == Some(page) {
                        (500, json!({"error": "database unavailable"}))
                    } else {
                        let next = if page + 1 < a.pages.len() {
                            json!(format!("p{}", page + 1))
                        } else {
                            Value::Null
                        };
                        let items = a.pages.get(page).cloned().unwrap_or(json!([]));
                        (
                            200,
                            json!({"data": {"commitments": items}, "next_cursor": next}),
                        )
                    }
                };
                let body = body.to_string();
                let _ = stream.write_all(
                    format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            });
        }
    });
    port
}
