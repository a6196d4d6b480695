//! The JSON paths of conditions and captures: `.a.b[0].c`, `[2]`, `.a-b`.

use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// An object key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// Parses what follows `[BODY]`: empty, or `.key`, `[n]`, chained.
pub fn parse(path: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    let mut rest = path.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            if key.is_empty() {
                return Err(format!("empty key in path {path:?}"));
            }
            steps.push(Step::Key(key.to_string()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r
                .find(']')
                .ok_or_else(|| format!("unclosed [ in path {path:?}"))?;
            let index = r[..end].trim().parse::<usize>().map_err(|_| {
                format!(
                    "array index {:?} in path {path:?} is not a number",
                    &r[..end]
                )
            })?;
            steps.push(Step::Index(index));
            rest = &r[end + 1..];
        } else {
            return Err(format!("path {path:?} must continue with .key or [index]"));
        }
    }
    Ok(steps)
}

/// The value at `path`, if any.
pub fn get<'a>(doc: &'a Value, path: &[Step]) -> Option<&'a Value> {
    path.iter().try_fold(doc, |v, step| match step {
        Step::Key(k) => v.get(k),
        Step::Index(i) => v.get(*i),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let doc: Value = serde_json::json!({"a": {"b": [10, {"c": "x"}]}, "k-1": true});
        assert_eq!(
            get(&doc, &parse(".a.b[1].c").unwrap()),
            Some(&Value::from("x"))
        );
        assert_eq!(
            get(&doc, &parse(".a.b[0]").unwrap()),
            Some(&Value::from(10))
        );
        assert_eq!(get(&doc, &parse(".k-1").unwrap()), Some(&Value::Bool(true)));
        assert_eq!(get(&doc, &parse(".a.nope").unwrap()), None);
        assert_eq!(get(&doc, &parse("").unwrap()), Some(&doc));
        assert!(parse(".a[x]").unwrap_err().contains("index"));
        assert!(parse("a").is_err());
        assert!(parse(".a[1").is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_a_path_or_an_error(s in "\\PC{0,40}") {
            let _ = parse(&s);
        }
    }
}
