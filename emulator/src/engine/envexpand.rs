//! Environment variable substitution in command lines, as systemd does before exec:
//! `${NAME}` is replaced inside a word, a word that is exactly `$NAME` splits the value into
//! words, and `$$` is a literal `$`. Unknown variables expand to nothing.

fn lookup<'a>(env: &'a [(String, String)], name: &str) -> &'a str {
    env.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

fn expand_word(word: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = word;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 1..];
        if let Some(t) = tail.strip_prefix('$') {
            out.push('$');
            rest = t;
        } else if let Some(end) = tail.strip_prefix('{').and_then(|t| t.find('}')) {
            let name = &tail[1..=end];
            out.push_str(lookup(env, name));
            rest = &tail[end + 2..];
        } else {
            out.push('$');
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

pub fn expand_argv(argv: &[String], env: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::with_capacity(argv.len());
    for (i, w) in argv.iter().enumerate() {
        match w.strip_prefix('$') {
            // argv[0] is never split.
            Some(name) if i > 0 && is_name(name) => {
                out.extend(lookup(env, name).split_whitespace().map(str::to_string))
            }
            _ => out.push(expand_word(w, env)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_like_systemd() {
        let env = vec![("A".to_string(), "x y".to_string())];
        let argv: Vec<String> = ["/bin/echo", "${A}!", "$A", "$$A", "${B}"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            expand_argv(&argv, &env),
            vec!["/bin/echo", "x y!", "x", "y", "$A", ""]
        );
    }
}
