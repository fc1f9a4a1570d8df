//! fqc's textual IR (`.fqir`): a printer and a parser that are exact inverses on
//! canonical text, so pass outputs make readable, diffable snapshots (Cranelift's
//! `.clif` filetests are the model).
//!
//! ```text
//! graph "mnist_cnn"(%0 "x": f32[N,1,28,28]) -> (%4) {
//!   %1 "conv1.weight": f32[8,1,3,3] = const #9f3a0c1d2e4b5a67
//!   %2 "conv1.bias": f32[8] = const [0.1, -0.25, 0.0, 1e-5, 3.0, 2.0, 1.0, 0.5]
//!   %3: f32[N,8,28,28] = conv(%0, %1, %2) {kernel=[3,3], strides=[1,1], pads=[1,1,1,1], dilations=[1,1], group=1} "/conv1/Conv"
//!   %4: f32[N,8,28,28] = relu(%3) "/relu1/Relu"
//! }
//! ```
//!
//! # Canonical form
//!
//! * One statement a line: the header, one line per constant or node, and `}`.
//! * Values are numbered `%0, %1, ...` in the order they are printed: graph inputs
//!   first; then, walking the schedule, each constant right before the first node that
//!   uses it (as an operand, or as the per-channel scale of an operand's or the
//!   result's type; a constant's own scale constant comes right before it), then the
//!   node; then the constants only graph outputs or input types need. This is exactly
//!   the order [`Graph::compact`](crate::Graph::compact) allocates ids in, so
//!   `parse(print(g))` equals `g.compact()` (up to elided payloads, below).
//! * Only live nodes (those the outputs depend on) are printed, as `compact` keeps.
//! * Graph inputs always carry a quoted name (`""` when the model had none, as
//!   `compact` does); constants and node results carry one iff their `name` is
//!   `Some`; a node's own name trails the line when non-empty.
//! * Types: `dtype[dims]`, `N` for the batch, then ` s=<f32>` (per tensor) or
//!   ` s=%k@axis` (per channel, scales in constant `%k`).
//! * Constants with at most [`INLINE_MAX`] elements print their payload inline;
//!   larger ones print `#` and the 16-hex-digit [`Tensor::digest`](crate::Tensor).
//! * Floats print with `{:?}`, which round-trips `f32` exactly (incl. `inf`, `-0.0`).
//!
//! # Parsing rules
//!
//! The parser accepts canonical text plus blank lines, `;` comments, free spacing
//! between tokens and inline payloads of any length; everything else is an error with
//! its line number. Value ids are *not* renumbered: every definition must carry the
//! next id in sequence (so a duplicate or skipped `%id` is an error), and a value must be
//! defined before it is used as an operand. Two forward references are allowed: the
//! header's output list, and per-channel scales in input types (their constants come
//! later in the body). Because ids are consecutive, `%k` in the text is `Value(k)` in
//! the parsed graph, so verifier messages about the parsed graph name the text's ids.
//!
//! # Soundness
//!
//! The printer emits every field the graph's semantics depends on (op attributes in a
//! fixed order, full types, payloads or their digests); the parser rebuilds each field
//! from exactly that text, checks each line as it goes (ids, types against
//! [`infer`](crate::infer::infer), constant payloads) and then runs
//! [`verify`](crate::verify::verify) on the result, so every parsed graph is valid.

mod parse;
mod print;

pub use parse::parse;
pub use print::print;

use crate::types::{DType, Scale, TensorType};
use crate::Value;

/// Constants with at most this many elements print their payload inline.
pub const INLINE_MAX: usize = 8;

/// `s` as a double-quoted string literal, escaping `\`, `"` and control characters.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A type in text form; `id` renders the value id of a per-channel scale constant.
pub(crate) fn fmt_type(ty: &TensorType, id: impl Fn(Value) -> String) -> String {
    let mut s = format!("{}{}", ty.dtype, ty.shape);
    match &ty.scale {
        None => {}
        Some(Scale::Tensor(f)) => s.push_str(&format!(" s={:?}", f.get())),
        Some(Scale::Channel { axis, scales }) => {
            s.push_str(&format!(" s={}@{axis}", id(*scales)));
        }
    }
    s
}

/// Parses a dtype's text form (the inverse of `DType`'s `Display`).
pub(crate) fn parse_dtype(s: &str) -> Option<DType> {
    match s {
        "f32" => Some(DType::F32),
        "i32" => Some(DType::I32),
        "i64" => Some(DType::I64),
        "t2" => Some(DType::Ternary),
        _ => {
            let signed = match s.as_bytes().first()? {
                b'i' => true,
                b'u' => false,
                _ => return None,
            };
            let bits = &s[1..];
            if bits.len() != 1 || !bits.as_bytes()[0].is_ascii_digit() {
                return None;
            }
            DType::int(signed, bits.parse().ok()?)
        }
    }
}

/// A token of the text format (the lexer works a line at a time).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    /// A run of `[A-Za-z0-9_.+-]`: names, numbers, dims, digests.
    Word(String),
    /// A string literal, unescaped.
    Str(String),
    /// One punctuation character.
    P(char),
    /// `->`
    Arrow,
}

pub(crate) fn describe(t: Option<&Tok>) -> String {
    match t {
        None => "end of line".into(),
        Some(Tok::Word(w)) => format!("`{w}`"),
        Some(Tok::Str(s)) => format!("string {}", quote(s)),
        Some(Tok::P(c)) => format!("`{c}`"),
        Some(Tok::Arrow) => "`->`".into(),
    }
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '+' | '-')
}

/// Splits one line into tokens, dropping whitespace and a trailing `;` comment.
pub(crate) fn lex(line: &str) -> Result<Vec<Tok>, String> {
    let mut toks = Vec::new();
    let mut it = line.chars().peekable();
    while let Some(&c) = it.peek() {
        if c.is_whitespace() {
            it.next();
        } else if c == ';' {
            break;
        } else if c == '"' {
            it.next();
            toks.push(Tok::Str(lex_string(&mut it)?));
        } else if c == '-' && it.clone().nth(1) == Some('>') {
            it.nth(1);
            toks.push(Tok::Arrow);
        } else if is_word(c) {
            let mut w = String::new();
            while let Some(&c) = it.peek() {
                if !is_word(c) || (c == '-' && it.clone().nth(1) == Some('>')) {
                    break;
                }
                w.push(c);
                it.next();
            }
            toks.push(Tok::Word(w));
        } else if "()[]{},:=%#@".contains(c) {
            it.next();
            toks.push(Tok::P(c));
        } else {
            return Err(format!("unexpected character {c:?}"));
        }
    }
    Ok(toks)
}

fn lex_string(it: &mut std::iter::Peekable<std::str::Chars>) -> Result<String, String> {
    let mut s = String::new();
    loop {
        match it.next() {
            None => return Err("unterminated string".into()),
            Some('"') => return Ok(s),
            Some('\\') => match it.next() {
                Some('\\') => s.push('\\'),
                Some('"') => s.push('"'),
                Some('n') => s.push('\n'),
                Some('t') => s.push('\t'),
                Some('r') => s.push('\r'),
                Some('u') => {
                    if it.next() != Some('{') {
                        return Err("expected `{` after `\\u`".into());
                    }
                    let mut hex = String::new();
                    loop {
                        match it.next() {
                            Some('}') => break,
                            Some(c) if c.is_ascii_hexdigit() && hex.len() < 6 => hex.push(c),
                            _ => return Err("invalid `\\u{...}` escape".into()),
                        }
                    }
                    let c = u32::from_str_radix(&hex, 16)
                        .ok()
                        .and_then(char::from_u32)
                        .ok_or_else(|| format!("invalid character code `\\u{{{hex}}}`"))?;
                    s.push(c);
                }
                Some(c) => return Err(format!("invalid escape `\\{c}` in string")),
                None => return Err("unterminated string".into()),
            },
            Some(c) => s.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes() {
        assert_eq!(quote("a\"b\\c\nd\u{1}é"), r#""a\"b\\c\nd\u{1}é""#);
    }

    #[test]
    fn dtypes_round_trip() {
        let mut all = vec![DType::F32, DType::I32, DType::I64, DType::Ternary];
        for bits in 2..=8 {
            all.push(DType::int(true, bits).unwrap());
            all.push(DType::int(false, bits).unwrap());
        }
        for d in all {
            assert_eq!(parse_dtype(&d.to_string()), Some(d));
        }
        for bad in ["", "i", "u1", "i9", "u16", "f64", "t3", "x8", "i08"] {
            assert_eq!(parse_dtype(bad), None, "{bad}");
        }
    }
}
