//! Reading numbers from the Prometheus text exposition format.
//!
//! A [`Selector`] is a metric name with optional exact label matches
//! (`http_requests_total{code="500",route="/publish"}`); its value is the
//! sum over every matching series, so `http_requests_total` alone is the
//! total across all labels.

/// A metric name and label matches.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    name: String,
    labels: Vec<(String, String)>,
}

fn parse_labels(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let (name, after) = rest
            .split_once('=')
            .ok_or_else(|| format!("label matcher {rest:?} lacks ="))?;
        let after = after.trim_start();
        let after = after
            .strip_prefix('"')
            .ok_or_else(|| format!("label {name:?}: value must be quoted"))?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(match n {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end.ok_or_else(|| format!("label {name:?}: unterminated value"))?;
        out.push((name.trim().to_string(), value));
        rest = after[end + 1..]
            .trim_start()
            .trim_start_matches(',')
            .trim_start();
    }
    Ok(out)
}

impl Selector {
    /// Parses `name` or `name{label="value",...}`.
    pub fn parse(s: &str) -> Result<Selector, String> {
        let s = s.trim();
        let (name, labels) = match s.split_once('{') {
            Some((n, rest)) => {
                let inner = rest
                    .strip_suffix('}')
                    .ok_or_else(|| format!("selector {s:?}: missing }}"))?;
                (
                    n.trim(),
                    parse_labels(inner).map_err(|e| format!("selector {s:?}: {e}"))?,
                )
            }
            None => (s, Vec::new()),
        };
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(format!("selector {s:?}: {name:?} is not a metric name"));
        }
        Ok(Selector {
            name: name.to_string(),
            labels,
        })
    }

    /// The sum of every matching series in `text`, or `None` when no series
    /// matches.
    pub fn value(&self, text: &str) -> Option<f64> {
        let mut sum = None;
        for (name, labels, v) in samples(text) {
            let matches = name == self.name
                && self
                    .labels
                    .iter()
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v));
            if matches {
                *sum.get_or_insert(0.0) += v;
            }
        }
        sum
    }
}

/// Every sample of an exposition: (metric name, labels, value); lines that
/// are not samples, and samples that do not parse, are skipped.
pub fn samples(text: &str) -> impl Iterator<Item = (&str, Vec<(String, String)>, f64)> {
    text.lines().filter_map(|line| {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let (series, labels_text, rest) = match line.find(['{', ' ']) {
            Some(i) if line.as_bytes()[i] == b'{' => {
                // A `}` before the `{` is no label set: skip the line.
                let close = line.rfind('}').filter(|c| *c > i)?;
                (&line[..i], &line[i + 1..close], &line[close + 1..])
            }
            Some(i) => (&line[..i], "", &line[i..]),
            None => return None,
        };
        let labels = parse_labels(labels_text).ok()?;
        let v = rest.split_whitespace().next().and_then(parse_value)?;
        Some((series, labels, v))
    })
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        s => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{code="200",route="/publish"} 990
http_requests_total{code="500",route="/publish"} 12
http_requests_total{code="500",route="/other"} 3 1700000000000
rate_limit_blocked_total 7
"#;

    #[test]
    fn selectors_sum_matching_series() {
        let v = |s: &str| Selector::parse(s).unwrap().value(TEXT);
        assert_eq!(v("http_requests_total"), Some(1005.0));
        assert_eq!(v(r#"http_requests_total{code="500"}"#), Some(15.0));
        assert_eq!(
            v(r#"http_requests_total{code="500",route="/publish"}"#),
            Some(12.0)
        );
        assert_eq!(v("rate_limit_blocked_total"), Some(7.0));
        assert_eq!(v("nope"), None);
        assert!(Selector::parse("9bad").is_err());
        assert!(Selector::parse("a{b=c}").is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_a_selector_or_an_error(s in "\\PC{0,60}") {
            let _ = Selector::parse(&s);
        }

        #[test]
        fn selector_like_text_is_a_selector_or_an_error(s in "[a-z_]{1,8}(\\{[a-z]{0,4}(=|!=|=~)?\\\"?\\PC{0,6}\\\"?,?\\}?)?") {
            let _ = Selector::parse(&s);
        }

        #[test]
        fn any_exposition_text_is_read_without_panicking(s in "\\PC{0,200}") {
            let sel = Selector::parse("m").unwrap();
            let _ = sel.value(&s);
            let _ = sel.value(&format!("m{s}"));
        }
    }
}
