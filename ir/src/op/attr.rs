//! Op attributes as data: how every attribute field of every op is written and read,
//! described once per field type, so the text format and the `.fqc` artifact (and any
//! later format) encode ops from the same description.
//!
//! An op's attributes are a list of `(key, Attr)` pairs in a fixed order ([`Field::put`]
//! for each field, in declaration order, see `op_table!`); decoding reads them back in
//! the same order from an [`AttrSource`] ([`Field::take`]). Because both directions are
//! generated from the one field list, `take(put(op)) == op` for every op as long as each
//! `Field` impl is a bijection between its values and its attributes — which the impls
//! below are (a float as its exact value or bit pattern, a window as its four or five
//! arrays, an enum as its word) — and the text and artifact sources return what the
//! printer and encoder wrote (their round-trip tests check it).

use std::fmt;

use crate::types::{DType, Dim, F32};

use super::Window;

/// One attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Int(u64),
    Float(F32),
    Bool(bool),
    DType(DType),
    Ints(Vec<u64>),
    SInts(Vec<i64>),
    Dims(Vec<Dim>),
    /// One of a fixed set of words (an enum attribute such as a pad mode).
    Word(&'static str),
}

fn list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, v: &[T]) -> fmt::Result {
    write!(f, "[")?;
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            write!(f, ",")?;
        }
        write!(f, "{x}")?;
    }
    write!(f, "]")
}

/// The text form: `3`, `0.5` (f32 `{:?}`, exact), `true`, `u4`, `[1,2]`, `[N,16]`, `edge`.
impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attr::Int(v) => write!(f, "{v}"),
            Attr::Float(v) => write!(f, "{:?}", v.get()),
            Attr::Bool(v) => write!(f, "{v}"),
            Attr::DType(v) => write!(f, "{v}"),
            Attr::Ints(v) => list(f, v),
            Attr::SInts(v) => list(f, v),
            Attr::Dims(v) => list(f, v),
            Attr::Word(w) => write!(f, "{w}"),
        }
    }
}

/// Where decoded attributes come from: one typed read per field, in `put` order. Each
/// read names the key it expects; a source errs on a missing, misplaced or ill-typed
/// attribute.
pub trait AttrSource {
    fn int(&mut self, key: &str) -> Result<u64, String>;
    fn float(&mut self, key: &str) -> Result<F32, String>;
    fn bool(&mut self, key: &str) -> Result<bool, String>;
    fn dtype(&mut self, key: &str) -> Result<DType, String>;
    fn ints(&mut self, key: &str) -> Result<Vec<u64>, String>;
    fn sints(&mut self, key: &str) -> Result<Vec<i64>, String>;
    fn dims(&mut self, key: &str) -> Result<Vec<Dim>, String>;
    /// One of `choices`.
    fn word(&mut self, key: &str, choices: &[&'static str]) -> Result<&'static str, String>;
}

/// An attribute list being written.
pub type Attrs = Vec<(&'static str, Attr)>;

/// How a field of an op is encoded: one or more attributes.
pub trait Field: Sized {
    fn put(&self, key: &'static str, out: &mut Attrs);
    fn take(key: &'static str, src: &mut dyn AttrSource) -> Result<Self, String>;
}

impl Field for u64 {
    fn put(&self, key: &'static str, out: &mut Attrs) {
        out.push((key, Attr::Int(*self)));
    }
    fn take(key: &'static str, src: &mut dyn AttrSource) -> Result<Self, String> {
        src.int(key)
    }
}

impl Field for F32 {
    fn put(&self, key: &'static str, out: &mut Attrs) {
        out.push((key, Attr::Float(*self)));
    }
    fn take(key: &'static str, src: &mut dyn AttrSource) -> Result<Self, String> {
        src.float(key)
    }
}

impl Field for bool {
    fn put(&self, key: &'static str, out: &mut Attrs) {
        out.push((key, Attr::Bool(*self)));
    }
    fn take(key: &'static str, src: &mut dyn AttrSource) -> Result<Self, String> {
        src.bool(key)
    }
}

impl Field for DType {
    fn put(&self, key: &'static str, out: &mut Attrs) {
        out.push((key, Attr::DType(*self)));
    }
    fn take(key: &'static str, src: &mut dyn AttrSource) -> Result<Self, String> {
        src.dtype(key)
    }
}

impl Field for Vec<u64> {
    fn put(&self, key: &'static str, out: &mut Attrs) {
        out.push((key, Attr::Ints(self.clone())));
    }
    fn take(key: &'static str, src: &mut dyn AttrSource) -> Result<Self, String> {
        src.ints(key)
    }
}

impl Field for Vec<i64> {
    fn put(&self, key: &'static str, out: &mut Attrs) {
        out.push((key, Attr::SInts(self.clone())));
    }
    fn take(key: &'static str, src: &mut dyn AttrSource) -> Result<Self, String> {
        src.sints(key)
    }
}

impl Field for Vec<Dim> {
    fn put(&self, key: &'static str, out: &mut Attrs) {
        out.push((key, Attr::Dims(self.clone())));
    }
    fn take(key: &'static str, src: &mut dyn AttrSource) -> Result<Self, String> {
        src.dims(key)
    }
}

/// An enum attribute written as one of its words.
pub trait Choice: Copy + PartialEq + 'static {
    const CHOICES: &'static [(&'static str, Self)];

    fn word(self) -> &'static str {
        Self::CHOICES
            .iter()
            .find(|(_, v)| *v == self)
            .map_or("?", |(w, _)| w)
    }
}

/// Implements [`Field`] for [`Choice`] enums.
#[macro_export]
macro_rules! choice_field {
    ($($t:ty),* $(,)?) => {$(
        impl $crate::op::attr::Field for $t {
            fn put(&self, key: &'static str, out: &mut $crate::op::attr::Attrs) {
                out.push((key, $crate::op::attr::Attr::Word(
                    <$t as $crate::op::attr::Choice>::word(*self),
                )));
            }
            fn take(
                key: &'static str,
                src: &mut dyn $crate::op::attr::AttrSource,
            ) -> Result<Self, String> {
                let words: Vec<&'static str> = <$t as $crate::op::attr::Choice>::CHOICES
                    .iter()
                    .map(|(w, _)| *w)
                    .collect();
                let w = src.word(key, &words)?;
                <$t as $crate::op::attr::Choice>::CHOICES
                    .iter()
                    .find(|(x, _)| *x == w)
                    .map(|(_, v)| *v)
                    .ok_or_else(|| format!("`{key}`: unknown value `{w}`"))
            }
        }
    )*};
}

fn array<const K: usize>(key: &str, v: Vec<u64>) -> Result<[u64; K], String> {
    let n = v.len();
    v.try_into()
        .map_err(|_| format!("`{key}` needs {K} values, found {n}"))
}

/// A convolution's window: `kernel`, `strides`, `pads`, `dilations` (no `ceil_mode`:
/// convolutions always round down).
pub mod conv_window {
    use super::*;

    pub fn put(w: &Window, _key: &'static str, out: &mut Attrs) {
        out.push(("kernel", Attr::Ints(w.kernel.to_vec())));
        out.push(("strides", Attr::Ints(w.strides.to_vec())));
        out.push(("pads", Attr::Ints(w.pads.to_vec())));
        out.push(("dilations", Attr::Ints(w.dilations.to_vec())));
    }

    pub fn take(_key: &'static str, src: &mut dyn AttrSource) -> Result<Window, String> {
        Ok(Window {
            kernel: array("kernel", src.ints("kernel")?)?,
            strides: array("strides", src.ints("strides")?)?,
            pads: array("pads", src.ints("pads")?)?,
            dilations: array("dilations", src.ints("dilations")?)?,
            ceil_mode: false,
        })
    }
}

/// A pool's window: a convolution window and `ceil_mode`.
pub mod pool_window {
    use super::*;

    pub fn put(w: &Window, key: &'static str, out: &mut Attrs) {
        conv_window::put(w, key, out);
        out.push(("ceil_mode", Attr::Bool(w.ceil_mode)));
    }

    pub fn take(key: &'static str, src: &mut dyn AttrSource) -> Result<Window, String> {
        let mut w = conv_window::take(key, src)?;
        w.ceil_mode = src.bool("ceil_mode")?;
        Ok(w)
    }
}

/// A group of ops that share one variant of [`super::Op`] (the element-wise binary and
/// unary functions): each member has its own name and attributes.
pub trait Family: Sized {
    /// Every member's name.
    const NAMES: &'static [&'static str];
    fn name(&self) -> &'static str;
    fn put_attrs(&self, out: &mut Attrs);
    /// The member named `name` with its attributes from `src`, or None when no member
    /// has that name.
    fn take(name: &str, src: &mut dyn AttrSource) -> Option<Result<Self, String>>;
}

/// Defines a [`Family`] enum: members with a name and, optionally, attribute fields.
#[macro_export]
macro_rules! op_family {
    (
        $(#[$meta:meta])*
        pub enum $F:ident {
            $(
                $(#[$vmeta:meta])*
                $V:ident $({ $($f:ident : $t:ty),* $(,)? })? = $name:literal
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $F {
            $( $(#[$vmeta])* $V $({ $($f: $t),* })? ),*
        }

        impl $F {
            /// The member's op name in the text format.
            pub fn name(&self) -> &'static str {
                match self {
                    $( $F::$V { .. } => $name ),*
                }
            }
        }

        impl $crate::op::attr::Family for $F {
            const NAMES: &'static [&'static str] = &[$($name),*];

            fn name(&self) -> &'static str {
                $F::name(self)
            }

            #[allow(unused_variables)]
            fn put_attrs(&self, out: &mut $crate::op::attr::Attrs) {
                match self {
                    $( $F::$V $({ $($f),* })? => {
                        $($( $crate::op::attr::Field::put($f, stringify!($f), out); )*)?
                    } ),*
                }
            }

            #[allow(unused_variables)]
            fn take(
                name: &str,
                src: &mut dyn $crate::op::attr::AttrSource,
            ) -> Option<Result<Self, String>> {
                $(
                    if name == $name {
                        fn build(
                            src: &mut dyn $crate::op::attr::AttrSource,
                        ) -> Result<$F, String> {
                            Ok($F::$V $({ $($f: <$t as $crate::op::attr::Field>::take(stringify!($f), src)?),* })?)
                        }
                        return Some(build(src));
                    }
                )*
                None
            }
        }
    };
}
