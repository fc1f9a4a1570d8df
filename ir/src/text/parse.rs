//! The parser: canonical text (format and rules in the parent module's docs) to a graph.
//!
//! The text is read a line at a time (every statement is one line, so errors carry
//! exact line numbers): the lexer (in the parent module) turns the line into words, strings and punctuation, and
//! a recursive-descent reader builds the header, then each constant or node through
//! the ordinary [`Graph`] API. Each line is checked as soon as it is added (consecutive
//! ids, operands already defined, types against the verifier's per-value and per-node
//! rules, payload element counts and ranges), and the finished graph is run through
//! [`verify`], so a returned graph is always valid. Nothing here indexes unchecked or
//! allocates more than the input's size: element counts come from the text, shapes are
//! only multiplied with overflow checks, and digests stand in for elided payloads.

use super::{describe, lex, parse_dtype, quote, Tok};
use crate::error::{IrError, Result};
use crate::graph::{ConstData, Graph, Node, Value};
use crate::op::{AttrSource, Op};
use crate::tensor::{Tensor, TensorData};
use crate::types::{DType, Dim, Scale, Shape, TensorType, F32};
use crate::verify::{check_const, check_node, check_type, verify};

/// Parses canonical text (or text with comments, blank lines and free spacing) into a
/// verified graph.
pub fn parse(s: &str) -> Result<Graph> {
    let mut lines = s.lines().enumerate().map(|(i, l)| (i + 1, l));
    let err = |line: usize, msg: String| IrError::Parse { line, msg };
    let mut next_line = || -> Result<Option<(usize, Cursor)>> {
        for (n, text) in lines.by_ref() {
            let toks = lex(text).map_err(|m| err(n, m))?;
            if !toks.is_empty() {
                return Ok(Some((n, Cursor { toks, pos: 0 })));
            }
        }
        Ok(None)
    };
    let Some((header_line, mut cur)) = next_line()? else {
        return Err(err(
            1,
            "expected a `graph` header, found end of input".into(),
        ));
    };
    let mut p = Parser {
        g: Graph::default(),
    };
    let outputs = p.header(&mut cur).map_err(|m| err(header_line, m))?;
    let mut last = header_line;
    loop {
        let Some((n, mut cur)) = next_line()? else {
            return Err(err(last, "unexpected end of input: expected `}`".into()));
        };
        last = n;
        if cur.peek() == Some(&Tok::P('}')) {
            cur.pos += 1;
            cur.end().map_err(|m| err(n, m))?;
            break;
        }
        p.statement(&mut cur).map_err(|m| err(n, m))?;
    }
    if let Some((n, _)) = next_line()? {
        return Err(err(n, "unexpected text after the closing `}`".into()));
    }
    let mut g = p.g;
    let mut outs = Vec::with_capacity(outputs.len());
    for id in outputs {
        if id as usize >= g.num_values() {
            return Err(err(header_line, format!("output %{id} is not defined")));
        }
        outs.push(Value(id));
    }
    g.set_outputs(outs);
    verify(&g).map_err(|e| err(header_line, e.to_string()))?;
    Ok(g)
}

/// The tokens of one line and a read position.
struct Cursor {
    toks: Vec<Tok>,
    pos: usize,
}

impl Cursor {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn eat(&mut self, c: char) -> bool {
        let hit = self.peek() == Some(&Tok::P(c));
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn expected<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("expected {what}, found {}", describe(self.peek())))
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            self.expected(&format!("`{c}`"))
        }
    }

    fn word(&mut self, what: &str) -> Result<String, String> {
        match self.peek() {
            Some(Tok::Word(w)) => {
                let w = w.clone();
                self.pos += 1;
                Ok(w)
            }
            _ => self.expected(what),
        }
    }

    fn string(&mut self) -> Option<String> {
        match self.peek() {
            Some(Tok::Str(s)) => {
                let s = s.clone();
                self.pos += 1;
                Some(s)
            }
            _ => None,
        }
    }

    fn end(&self) -> Result<(), String> {
        match self.peek() {
            None => Ok(()),
            _ => self.expected("end of line"),
        }
    }

    /// `%id`
    fn value_id(&mut self) -> Result<u32, String> {
        self.expect('%')?;
        let w = self.word("a value id after `%`")?;
        parse_uint(&w)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| format!("invalid value id `%{w}`"))
    }

    /// `( item, ... )` with `item` read by `f`.
    fn list<T>(
        &mut self,
        open: char,
        close: char,
        mut f: impl FnMut(&mut Self) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        self.expect(open)?;
        let mut items = Vec::new();
        if self.eat(close) {
            return Ok(items);
        }
        loop {
            items.push(f(self)?);
            if self.eat(close) {
                return Ok(items);
            }
            if !self.eat(',') {
                return self.expected(&format!("`,` or `{close}`"));
            }
        }
    }
}

/// A decimal integer without sign or other decoration.
fn parse_uint(w: &str) -> Option<u64> {
    (!w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()))
        .then(|| w.parse().ok())
        .flatten()
}

fn uint(w: &str) -> Result<u64, String> {
    parse_uint(w).ok_or_else(|| format!("expected an unsigned integer, found `{w}`"))
}

fn float(w: &str) -> Result<f32, String> {
    w.parse()
        .map_err(|_| format!("expected a float, found `{w}`"))
}

struct Parser {
    g: Graph,
}

impl Parser {
    /// `graph "name"(%0 "x": ty, ...) -> (%k, ...) {`; returns the output ids.
    fn header(&mut self, cur: &mut Cursor) -> Result<Vec<u32>, String> {
        if cur.word("`graph`").as_deref() != Ok("graph") {
            cur.pos = 0;
            return cur.expected("`graph`");
        }
        self.g.name = cur
            .string()
            .map_or_else(|| cur.expected("the graph's name"), Ok)?;
        cur.list('(', ')', |cur| {
            self.expect_next_id(cur)?;
            let Some(name) = cur.string() else {
                return cur.expected("the input's quoted name");
            };
            if self
                .g
                .values()
                .any(|(_, i)| i.name.as_deref() == Some(&name))
            {
                return Err(format!("duplicate input name {}", quote(&name)));
            }
            cur.expect(':')?;
            let ty = self.ty(cur, true)?;
            self.g.add_input(name, ty);
            Ok(())
        })?;
        if cur.next() != Some(Tok::Arrow) {
            cur.pos -= 1;
            return cur.expected("`->`");
        }
        let outs = cur.list('(', ')', Cursor::value_id)?;
        cur.expect('{')?;
        cur.end()?;
        Ok(outs)
    }

    /// Reads `%id` and checks it is the next id in sequence.
    fn expect_next_id(&self, cur: &mut Cursor) -> Result<(), String> {
        let id = cur.value_id()? as usize;
        let next = self.g.num_values();
        if id < next {
            return Err(format!("value %{id} is already defined"));
        }
        if id > next {
            return Err(format!(
                "expected value %{next}, found %{id}: values are numbered consecutively"
            ));
        }
        Ok(())
    }

    /// A use of an already defined value.
    fn operand(&self, cur: &mut Cursor) -> Result<Value, String> {
        let id = cur.value_id()?;
        if id as usize >= self.g.num_values() {
            return Err(format!("value %{id} is used before its definition"));
        }
        Ok(Value(id))
    }

    /// `dtype[dims]` with an optional ` s=<f32>` or ` s=%k@axis`.
    fn ty(&self, cur: &mut Cursor, forward_scale: bool) -> Result<TensorType, String> {
        let w = cur.word("an element type")?;
        let dtype = parse_dtype(&w).ok_or_else(|| format!("unknown element type `{w}`"))?;
        let dims = cur.list('[', ']', |cur| {
            let w = cur.word("a dimension")?;
            if w == "N" {
                Ok(Dim::Batch)
            } else {
                Ok(Dim::Fixed(uint(&w)?))
            }
        })?;
        let mut ty = TensorType::new(dtype, Shape(dims));
        if cur.peek() == Some(&Tok::Word("s".into())) {
            cur.pos += 1;
            cur.expect('=')?;
            ty.scale = Some(if cur.peek() == Some(&Tok::P('%')) {
                let scales = if forward_scale {
                    Value(cur.value_id()?)
                } else {
                    self.operand(cur)?
                };
                cur.expect('@')?;
                let axis = uint(&cur.word("a scale axis")?)?;
                let axis = usize::try_from(axis).map_err(|_| "scale axis too large")?;
                Scale::Channel { axis, scales }
            } else {
                Scale::Tensor(F32(float(&cur.word("a scale")?)?))
            });
        }
        Ok(ty)
    }

    /// `%k ["name"]: ty = const <payload>` or `%k ["name"]: ty = op(args) [{attrs}] ["node"]`.
    fn statement(&mut self, cur: &mut Cursor) -> Result<(), String> {
        self.expect_next_id(cur)?;
        let name = cur.string();
        cur.expect(':')?;
        let ty = self.ty(cur, false)?;
        cur.expect('=')?;
        let op = cur.word("`const` or an op name")?;
        let v = if op == "const" {
            let data = payload(cur, &ty)?;
            cur.end()?;
            let v = self.g.add_const_data(name, ty, data);
            check_const(&self.g, v)?;
            v
        } else {
            let args = cur.list('(', ')', |cur| self.operand(cur))?;
            let attrs = if cur.peek() == Some(&Tok::P('{')) {
                Some(cur.list('{', '}', |cur| {
                    let k = cur.word("an attribute name")?;
                    cur.expect('=')?;
                    let v = if cur.peek() == Some(&Tok::P('[')) {
                        AttrVal::List(cur.list('[', ']', |c| c.word("a list element"))?)
                    } else {
                        AttrVal::Scalar(cur.word("an attribute value")?)
                    };
                    Ok((k, v))
                })?)
            } else {
                None
            };
            let node_name = cur.string().unwrap_or_default();
            cur.end()?;
            let op = build_op(&op, attrs)?;
            let v = self.g.add_node(op, args, ty, node_name, name);
            let n = Node(self.g.num_nodes() as u32 - 1);
            check_node(&self.g, n).map_err(|e| e.to_string())?;
            v
        };
        check_type(&self.g, v)
    }
}

/// `#<16 hex digits>` or `[e, ...]` for a constant of type `ty`.
fn payload(cur: &mut Cursor, ty: &TensorType) -> Result<ConstData, String> {
    if cur.eat('#') {
        let w = cur.word("a 16-digit hex digest")?;
        if w.len() != 16 || !w.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(format!(
                "invalid digest `{w}`: expected 16 lowercase hex digits"
            ));
        }
        let digest = u64::from_str_radix(&w, 16).map_err(|e| e.to_string())?;
        return Ok(ConstData {
            tensor: None,
            digest,
        });
    }
    if cur.peek() != Some(&Tok::P('[')) {
        return cur.expected("`#` digest or `[` payload");
    }
    let items = cur.list('[', ']', |c| c.word("a number"))?;
    let dims = ty
        .shape
        .as_fixed()
        .ok_or_else(|| format!("constant shape {} must be fully fixed", ty.shape))?;
    let numel = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
    if numel != Some(items.len() as u64) {
        return Err(format!(
            "constant of shape {} needs {} elements, found {}",
            ty.shape,
            numel.map_or("too many".into(), |n| n.to_string()),
            items.len()
        ));
    }
    let int = |w: &String| -> Result<i64, String> {
        let x: i64 = w
            .parse()
            .map_err(|_| format!("expected an integer, found `{w}`"))?;
        let (lo, hi) = ty.dtype.int_range().unwrap_or((i64::MIN, i64::MAX));
        if x < lo || x > hi {
            return Err(format!("{x} is out of range for {}", ty.dtype));
        }
        Ok(x)
    };
    let ints = || items.iter().map(int).collect::<Result<Vec<i64>, String>>();
    let data = match ty.dtype {
        DType::F32 => TensorData::F32(items.iter().map(|w| float(w)).collect::<Result<_, _>>()?),
        DType::I32 => TensorData::I32(ints()?.into_iter().map(|x| x as i32).collect()),
        DType::I64 => TensorData::I64(ints()?),
        DType::Int { signed: true, .. } | DType::Ternary => {
            TensorData::I8(ints()?.into_iter().map(|x| x as i8).collect())
        }
        DType::Int { signed: false, .. } => {
            TensorData::U8(ints()?.into_iter().map(|x| x as u8).collect())
        }
    };
    let shape = dims
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| "dimension too large".to_string())?;
    let tensor = Tensor { shape, data };
    Ok(ConstData {
        digest: tensor.digest(),
        tensor: Some(std::sync::Arc::new(tensor)),
    })
}

enum AttrVal {
    Scalar(String),
    List(Vec<String>),
}

/// An op's attributes as written, consumed in the canonical order: the text side of
/// the op table's [`AttrSource`].
struct Attrs<'a> {
    op: &'a str,
    items: std::vec::IntoIter<(String, AttrVal)>,
}

impl Attrs<'_> {
    fn take(&mut self, key: &str) -> Result<AttrVal, String> {
        match self.items.next() {
            Some((k, v)) if k == key => Ok(v),
            Some((k, _)) => Err(format!(
                "{}: expected attribute `{key}`, found `{k}`",
                self.op
            )),
            None => Err(format!("{}: missing attribute `{key}`", self.op)),
        }
    }

    fn scalar(&mut self, key: &str) -> Result<String, String> {
        match self.take(key)? {
            AttrVal::Scalar(w) => Ok(w),
            AttrVal::List(_) => Err(format!("{}: `{key}` takes a single value", self.op)),
        }
    }

    fn list(&mut self, key: &str) -> Result<Vec<String>, String> {
        match self.take(key)? {
            AttrVal::List(l) => Ok(l),
            AttrVal::Scalar(_) => Err(format!("{}: `{key}` takes a list `[...]`", self.op)),
        }
    }
}

impl AttrSource for Attrs<'_> {
    fn int(&mut self, key: &str) -> Result<u64, String> {
        uint(&self.scalar(key)?)
    }

    fn float(&mut self, key: &str) -> Result<F32, String> {
        float(&self.scalar(key)?).map(F32)
    }

    fn bool(&mut self, key: &str) -> Result<bool, String> {
        match self.scalar(key)?.as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            w => Err(format!(
                "{}: `{key}` must be true or false, found `{w}`",
                self.op
            )),
        }
    }

    fn dtype(&mut self, key: &str) -> Result<DType, String> {
        let w = self.scalar(key)?;
        parse_dtype(&w).ok_or_else(|| format!("{}: unknown element type `{w}`", self.op))
    }

    fn ints(&mut self, key: &str) -> Result<Vec<u64>, String> {
        self.list(key)?.iter().map(|w| uint(w)).collect()
    }

    fn sints(&mut self, key: &str) -> Result<Vec<i64>, String> {
        self.list(key)?
            .iter()
            .map(|w| {
                w.parse::<i64>()
                    .map_err(|_| format!("expected an integer, found `{w}`"))
            })
            .collect()
    }

    fn dims(&mut self, key: &str) -> Result<Vec<Dim>, String> {
        self.list(key)?
            .iter()
            .map(|w| {
                if w == "N" {
                    Ok(Dim::Batch)
                } else {
                    uint(w).map(Dim::Fixed)
                }
            })
            .collect()
    }

    fn word(&mut self, key: &str, choices: &[&'static str]) -> Result<&'static str, String> {
        let w = self.scalar(key)?;
        choices.iter().copied().find(|c| *c == w).ok_or_else(|| {
            format!(
                "{}: `{key}` must be one of {}, found `{w}`",
                self.op,
                choices.join(", ")
            )
        })
    }
}

/// The op named `name` (the inverse of [`Op::name`]) with its attributes, read through
/// the op table ([`Op::from_attrs`]); an op without attributes takes no `{...}`.
fn build_op(name: &str, attrs: Option<Vec<(String, AttrVal)>>) -> Result<Op, String> {
    let had_braces = attrs.is_some();
    let mut a = Attrs {
        op: name,
        items: attrs.unwrap_or_default().into_iter(),
    };
    let op = Op::from_attrs(name, &mut a).map_err(|e| {
        if e.starts_with(&format!("{name}:")) || e.starts_with("unknown op") {
            e
        } else {
            format!("{name}: {e}")
        }
    })?;
    if had_braces && op.attrs().is_empty() {
        return Err(format!("`{name}` takes no attributes"));
    }
    match a.items.next() {
        Some((k, _)) => Err(format!("{name}: unexpected attribute `{k}`")),
        None => Ok(op),
    }
}
