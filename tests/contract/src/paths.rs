//! Path templates, path patterns and query strings.

/// Splits `path?query` into its path and its decoded `(name, value)` query pairs.
pub(crate) fn split(path_and_query: &str) -> (String, Vec<(String, String)>) {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, q),
        None => (path_and_query, ""),
    };
    let pairs = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((n, v)) => (decode(n), decode(v)),
            None => (decode(pair), String::new()),
        })
        .collect();
    (path.to_string(), pairs)
}

/// Percent-decodes a URL component (`+` is a space in query strings).
pub(crate) fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// The non-empty segments of a path (a trailing `/` is ignored).
pub(crate) fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// The segments of a request path. Unlike [`segments`], a trailing `/` is kept as an empty
/// last segment: Key Vault's `GET /secrets/{name}/` is `/secrets/{secret-name}/{secret-version}`
/// with the optional version left empty (the SDK reads the current version that way).
pub(crate) fn request_segments(path: &str) -> Vec<&str> {
    let mut out = segments(path);
    if path.len() > 1 && path.ends_with('/') && !out.is_empty() {
        out.push("");
    }
    out
}

/// One segment of an operation's path template.
#[derive(Clone, Debug)]
pub(crate) enum Segment {
    Literal(String),
    Param(String),
}

pub(crate) fn template(path: &str) -> Vec<Segment> {
    segments(path)
        .into_iter()
        .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => Segment::Param(name.to_string()),
            None => Segment::Literal(s.to_string()),
        })
        .collect()
}

/// Matches a request path against a template: `Some(path parameters)` when it fits.
pub(crate) fn match_template(
    template: &[Segment],
    path: &[&str],
    case_insensitive: bool,
) -> Option<Vec<(String, String)>> {
    if template.len() != path.len() {
        return None;
    }
    let mut params = Vec::new();
    for (t, p) in template.iter().zip(path) {
        match t {
            Segment::Literal(l) if literal_eq(l, p, case_insensitive) => {}
            Segment::Literal(_) => return None,
            Segment::Param(name) => params.push((name.clone(), decode(p))),
        }
    }
    Some(params)
}

fn literal_eq(a: &str, b: &str, case_insensitive: bool) -> bool {
    if case_insensitive {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

/// Matches a path against an exception's pattern: `*` or `{name}` is one segment, `**` any number.
pub(crate) fn glob_matches(pattern: &str, path: &str, case_insensitive: bool) -> bool {
    fn go(p: &[&str], s: &[&str], ci: bool) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((&"**", rest)) => (0..=s.len()).any(|skip| go(rest, &s[skip..], ci)),
            Some((head, rest)) => match s.split_first() {
                None => false,
                Some((first, tail)) => {
                    let one = *head == "*" || (head.starts_with('{') && head.ends_with('}'));
                    (one || literal_eq(head, first, ci)) && go(rest, tail, ci)
                }
            },
        }
    }
    let (path, _) = path.split_once('?').unwrap_or((path, ""));
    go(&segments(pattern), &segments(path), case_insensitive)
}

/// Matches a JSON pointer against a pattern in which `*` stands for one segment.
pub(crate) fn pointer_matches(pattern: &str, pointer: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let s: Vec<&str> = pointer.split('/').collect();
    p.len() == s.len() && p.iter().zip(&s).all(|(p, s)| *p == "*" || p == s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_names_and_values_are_percent_decoded() {
        let (path, q) = split("/a/b?%24expand=instanceView&api-version=2025-04-01&x");
        assert_eq!(path, "/a/b");
        assert_eq!(
            q,
            vec![
                ("$expand".into(), "instanceView".into()),
                ("api-version".into(), "2025-04-01".into()),
                ("x".into(), String::new())
            ]
        );
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%2"), "%2");
    }

    #[test]
    fn templates_match_segment_by_segment() {
        let t = template("/repos/{owner}/{repo}/actions/runners/{runner_id}");
        let p = segments("/repos/o/r/actions/runners/42");
        assert_eq!(request_segments("/secrets/github-pat/"), ["secrets", "github-pat", ""]);
        assert_eq!(request_segments("/secrets/github-pat"), ["secrets", "github-pat"]);
        assert_eq!(match_template(&t, &p, false).unwrap()[2], ("runner_id".into(), "42".into()));
        assert!(match_template(&t, &segments("/repos/o/r/Actions/runners/42"), false).is_none());
        assert!(match_template(&t, &segments("/repos/o/r/Actions/runners/42"), true).is_some());
    }

    #[test]
    fn globs_match_one_or_many_segments() {
        assert!(glob_matches("/subscriptions/*/resourceGroups/{rg}/**", "/subscriptions/s/resourcegroups/r/a/b", true));
        assert!(glob_matches("/a/**", "/a", false));
        assert!(!glob_matches("/a/*", "/a", false));
        assert!(pointer_matches("/value/*/etag", "/value/3/etag"));
        assert!(!pointer_matches("/value/*/etag", "/value/etag"));
    }
}
