//! Splitting a line into words, with double-quote support.

/// One whitespace-separated word of a line, with the column where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    /// 1-based column (in characters) of the word's first character.
    pub col: usize,
    pub quoted: bool,
}

/// Why a line could not be split: an unterminated quote at `col`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnterminatedQuote {
    pub col: usize,
}

/// Splits `line` (whose first character is at column `start_col`) on whitespace. Inside double
/// quotes whitespace is kept and `\"` / `\\` are escapes, so a regex or an argument may contain
/// spaces and quotes.
pub fn split(line: &str, start_col: usize) -> Result<Vec<Word>, UnterminatedQuote> {
    let mut words = Vec::new();
    let mut chars = line.chars().enumerate().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let col = start_col + i;
        let mut text = String::new();
        let mut quoted = false;
        while let Some(&(j, c)) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            if c != '"' {
                text.push(c);
                continue;
            }
            quoted = true;
            let quote_col = start_col + j;
            loop {
                match chars.next() {
                    None => return Err(UnterminatedQuote { col: quote_col }),
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.peek() {
                        Some(&(_, n)) if n == '"' || n == '\\' => {
                            text.push(n);
                            chars.next();
                        }
                        _ => text.push('\\'),
                    },
                    Some((_, c)) => text.push(c),
                }
            }
        }
        words.push(Word { text, col, quoted });
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(line: &str) -> Vec<String> {
        split(line, 1)
            .unwrap()
            .into_iter()
            .map(|w| w.text)
            .collect()
    }

    #[test]
    fn splits_on_whitespace_and_keeps_columns() {
        let w = split("  a  bc\td", 1).unwrap();
        assert_eq!(
            w.iter()
                .map(|w| (w.text.as_str(), w.col))
                .collect::<Vec<_>>(),
            vec![("a", 3), ("bc", 6), ("d", 9)]
        );
    }

    #[test]
    fn quotes_keep_spaces_and_escapes() {
        assert_eq!(texts(r#""a b" x"y"z "q\"\\""#), vec!["a b", "xyz", "q\"\\"]);
        assert_eq!(texts(r#""a\d""#), vec![r"a\d"]);
        assert_eq!(texts(r#""""#), vec![""]);
    }

    #[test]
    fn unterminated_quote_reports_its_column() {
        assert_eq!(split(r#"ab "cd"#, 5), Err(UnterminatedQuote { col: 8 }));
    }
}
