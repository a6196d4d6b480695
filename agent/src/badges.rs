//! Badges for READMEs and dashboards: a check's status, uptime and
//! response time as an SVG in the shields.io "flat" style, or as
//! shields.io endpoint JSON (`{"schemaVersion": 1, ...}`) for a shields
//! badge of one's own. Pure rendering; the API's `badges.rs` serves them.

use std::time::Duration;

use serde::Serialize;
use warden_runtime::Status;

/// A badge colour: its shields.io name and the hex it is drawn in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    /// All is well.
    BrightGreen,
    /// Good enough.
    Green,
    /// Attention.
    Yellow,
    /// Bad.
    Red,
    /// No data, or undecided.
    Grey,
}

impl Colour {
    /// shields.io's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Colour::BrightGreen => "brightgreen",
            Colour::Green => "green",
            Colour::Yellow => "yellow",
            Colour::Red => "red",
            Colour::Grey => "lightgrey",
        }
    }

    /// The hex it is drawn in: shields.io's hue, dark enough for white
    /// 11 px text at 4.5:1 or more (WCAG AA).
    pub fn hex(self) -> &'static str {
        match self {
            Colour::BrightGreen => "#2f7d00",
            Colour::Green => "#5a7d00",
            Colour::Yellow => "#8a6d00",
            Colour::Red => "#c0392b",
            Colour::Grey => "#6b6b6b",
        }
    }
}

/// What a badge says.
#[derive(Debug, Clone, PartialEq)]
pub struct Badge {
    /// The left side (the check, and what is measured).
    pub label: String,
    /// The right side.
    pub message: String,
    /// The right side's colour.
    pub colour: Colour,
}

/// The status badge: the check's current status.
pub fn status(check: &str, status: Option<Status>) -> Badge {
    let (message, colour) = match status {
        None => ("no runs yet", Colour::Grey),
        Some(Status::Ok) => ("ok", Colour::BrightGreen),
        Some(Status::Warning) => ("warning", Colour::Yellow),
        Some(Status::Critical) => ("critical", Colour::Red),
        Some(Status::Unknown) => ("unknown", Colour::Grey),
    };
    Badge {
        label: check.to_string(),
        message: message.into(),
        colour,
    }
}

/// The uptime badge: `ratio` (0..=1) of `window`, coloured by
/// `thresholds` (percentages, highest first).
pub fn uptime(check: &str, window: &str, ratio: Option<f64>, thresholds: [f64; 3]) -> Badge {
    let (message, colour) = match ratio {
        None => ("no data".to_string(), Colour::Grey),
        Some(r) => {
            let pct = r * 100.0;
            let colour = if pct >= thresholds[0] {
                Colour::BrightGreen
            } else if pct >= thresholds[1] {
                Colour::Green
            } else if pct >= thresholds[2] {
                Colour::Yellow
            } else {
                Colour::Red
            };
            (percent(pct), colour)
        }
    };
    Badge {
        label: format!("{check} uptime {window}"),
        message,
        colour,
    }
}

/// `99.95%`, `100%`: two decimals at most, never rounded up to 100.
fn percent(pct: f64) -> String {
    let floored = (pct * 100.0).floor() / 100.0;
    let text = format!("{floored:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// The response-time badge: the median of `window`, coloured by
/// `thresholds` (shortest first).
pub fn response_time(
    check: &str,
    window: &str,
    seconds: Option<f64>,
    thresholds: [Duration; 3],
) -> Badge {
    let (message, colour) = match seconds {
        None => ("no data".to_string(), Colour::Grey),
        Some(s) => {
            let d = Duration::from_secs_f64(s.max(0.0));
            let colour = if d <= thresholds[0] {
                Colour::BrightGreen
            } else if d <= thresholds[1] {
                Colour::Green
            } else if d <= thresholds[2] {
                Colour::Yellow
            } else {
                Colour::Red
            };
            let text = if s < 1.0 {
                format!("{} ms", (s * 1000.0).round() as u64)
            } else {
                format!("{s:.1} s")
            };
            (text, colour)
        }
    };
    Badge {
        label: format!("{check} response {window}"),
        message,
        colour,
    }
}

/// shields.io's endpoint schema.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint<'a> {
    schema_version: u8,
    label: &'a str,
    message: &'a str,
    color: &'static str,
    cache_seconds: u32,
}

impl Badge {
    /// As shields.io endpoint JSON, cached for `cache_seconds`.
    pub fn endpoint(&self, cache_seconds: u32) -> Endpoint<'_> {
        Endpoint {
            schema_version: 1,
            label: &self.label,
            message: &self.message,
            color: self.colour.name(),
            cache_seconds,
        }
    }

    /// As an SVG, labelled for screen readers.
    pub fn svg(&self) -> String {
        let (label, message) = (xml(&self.label), xml(&self.message));
        let lw = text_width(&self.label) + 10;
        let mw = text_width(&self.message) + 10;
        let w = lw + mw;
        let colour = self.colour.hex();
        format!(
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="20" role="img" aria-label="{label}: {message}"><title>{label}: {message}</title><linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient><clipPath id="r"><rect width="{w}" height="20" rx="3" fill="#fff"/></clipPath><g clip-path="url(#r)"><rect width="{lw}" height="20" fill="#555"/><rect x="{lw}" width="{mw}" height="20" fill="{colour}"/><rect width="{w}" height="20" fill="url(#s)"/></g><g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11"><text x="{lx}" y="14">{label}</text><text x="{mx}" y="14">{message}</text></g></svg>"##,
            lx = lw / 2,
            mx = lw + mw / 2,
        )
    }
}

/// `s` escaped for XML text and attributes.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// Width of `s` in Verdana 11 px, roughly (per-character classes).
fn text_width(s: &str) -> u32 {
    s.chars()
        .map(|c| match c {
            'i' | 'l' | 'j' | '.' | ',' | ':' | '\'' | '|' | '!' => 4,
            'f' | 't' | 'r' | 'I' | ' ' | '-' | '(' | ')' => 5,
            'm' | 'w' | 'M' | 'W' | '%' => 10,
            'A'..='Z' => 8,
            _ => 7,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_follow_the_thresholds() {
        let t = [99.9, 99.0, 95.0];
        assert_eq!(uptime("a", "30d", Some(1.0), t).colour, Colour::BrightGreen);
        assert_eq!(uptime("a", "30d", Some(0.995), t).colour, Colour::Green);
        assert_eq!(uptime("a", "30d", Some(0.96), t).colour, Colour::Yellow);
        assert_eq!(uptime("a", "30d", Some(0.5), t).colour, Colour::Red);
        assert_eq!(uptime("a", "30d", None, t).colour, Colour::Grey);
        let d = [
            Duration::from_millis(200),
            Duration::from_millis(500),
            Duration::from_secs(1),
        ];
        assert_eq!(response_time("a", "24h", Some(0.12), d).message, "120 ms");
        assert_eq!(
            response_time("a", "24h", Some(0.3), d).colour,
            Colour::Green
        );
        assert_eq!(response_time("a", "24h", Some(2.5), d).message, "2.5 s");
        assert_eq!(response_time("a", "24h", Some(2.5), d).colour, Colour::Red);
    }

    #[test]
    fn uptime_is_never_rounded_up_to_a_hundred() {
        assert_eq!(percent(100.0), "100%");
        assert_eq!(percent(99.999), "99.99%");
        assert_eq!(percent(99.5), "99.5%");
        assert_eq!(percent(0.0), "0%");
    }

    #[test]
    fn the_svg_is_labelled_and_escaped() {
        let b = Badge {
            label: "a<b>&\"c\"".into(),
            message: "ok".into(),
            colour: Colour::BrightGreen,
        };
        let svg = b.svg();
        assert!(
            svg.contains("aria-label=\"a&lt;b&gt;&amp;&quot;c&quot;: ok\""),
            "{svg}"
        );
        assert!(svg.contains("<title>a&lt;b&gt;&amp;&quot;c&quot;: ok</title>"));
        assert!(!svg.contains("a<b>"));
    }
}
