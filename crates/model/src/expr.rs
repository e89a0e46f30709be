//! The expression language of filters, monitor states and group membership rules.
//!
//! ```text
//! expr       := or
//! or         := and ("or" and)*
//! and        := unary ("and" unary)*
//! unary      := "not" unary | "(" expr ")" | "exists" "(" path ")"
//!             | "contained" "(" string ")" | operand op operand
//! op         := == != < <= > >= | matches | like | contains
//!             | "not" (matches | like | contains)
//! operand    := path | string | number | true | false
//! path       := segment ("/" segment)*      e.g. EventId, Params/Param[1], Property[@Name="x"]
//! segment    := name ("[" number "]" | "[" "@" name "=" string "]")?
//! ```
//!
//! Semantics (SCOM's System.ExpressionFilter): a comparison with a number literal compares
//! numerically, with a string literal as text, with `true`/`false` as booleans; two paths
//! compare numerically when both values are numbers. A missing value, or one that does not
//! convert, makes the comparison false (whatever the operator): use `exists(...)` to test
//! presence. `matches` is a regular expression (anywhere in the value unless anchored),
//! `like` a wildcard (`*` any run, `?` one character, whole value, case-insensitive),
//! `contains` a substring. `contained("G")` holds for members of group `G` (membership rules).
//! In strings, `\"`, `\\`, `\n` and `\t` are escapes; any other backslash stays as written, so
//! regular expressions like `"^web-\d+\.example"` need no doubling.

use std::borrow::Cow;
use std::fmt;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Deepest nesting accepted (parentheses, `not`): deeper input is an error, not a stack overflow.
pub const MAX_DEPTH: usize = 64;
/// Longest expression text accepted.
pub const MAX_LEN: usize = 64 * 1024;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// All hold (two or more).
    And(Vec<Expr>),
    /// Any holds (two or more).
    Or(Vec<Expr>),
    /// Does not hold.
    Not(Box<Expr>),
    /// Compare two operands.
    Compare {
        left: Operand,
        op: CmpOp,
        right: Operand,
    },
    /// The value is present.
    Exists(Path),
    /// The candidate is a member of this group.
    Contained(String),
}

/// A comparison operand.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Path(Path),
    Text(String),
    Number(f64),
    Bool(bool),
    /// A compiled pattern (right side of `matches` / `like`).
    Pattern(Pattern),
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Matches,
    NotMatches,
    Like,
    NotLike,
    Contains,
    NotContains,
}

impl CmpOp {
    fn text(self) -> &'static str {
        match self {
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Matches => "matches",
            CmpOp::NotMatches => "not matches",
            CmpOp::Like => "like",
            CmpOp::NotLike => "not like",
            CmpOp::Contains => "contains",
            CmpOp::NotContains => "not contains",
        }
    }
}

/// A regular expression or wildcard, compiled once; equal when the source text is equal.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// As written.
    pub source: String,
    /// Wildcard (`like`) rather than regular expression (`matches`).
    pub wildcard: bool,
    regex: Regex,
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.wildcard == other.wildcard
    }
}

impl Pattern {
    /// Compile a regular expression (size-limited).
    pub fn regex(source: &str) -> Result<Pattern, String> {
        let regex = RegexBuilder::new(source)
            .size_limit(1 << 20)
            .nest_limit(MAX_DEPTH as u32)
            .build()
            .map_err(|e| format!("bad regular expression {source:?}: {e}"))?;
        Ok(Pattern {
            source: source.to_string(),
            wildcard: false,
            regex,
        })
    }

    /// Compile a wildcard: `*` any run, `?` one character, whole value, case-insensitive.
    pub fn wildcard(source: &str) -> Result<Pattern, String> {
        let mut re = String::from("^");
        for c in source.chars() {
            match c {
                '*' => re.push_str(".*"),
                '?' => re.push('.'),
                c => re.push_str(&regex::escape(&c.to_string())),
            }
        }
        re.push('$');
        let regex = RegexBuilder::new(&re)
            .case_insensitive(true)
            .dot_matches_new_line(true)
            .size_limit(1 << 20)
            .build()
            .map_err(|e| format!("bad wildcard {source:?}: {e}"))?;
        Ok(Pattern {
            source: source.to_string(),
            wildcard: true,
            regex,
        })
    }

    /// Does the value match?
    pub fn is_match(&self, value: &str) -> bool {
        self.regex.is_match(value)
    }
}

/// A path into a data item or an instance's properties.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Path(pub Vec<Segment>);

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Segment {
    pub name: String,
    pub index: Option<Index>,
}

/// `[1]` or `[@Name="x"]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Index {
    Position(u32),
    Attribute { name: String, value: String },
}

impl Path {
    /// A one-segment path.
    pub fn name(name: &str) -> Path {
        Path(vec![Segment {
            name: name.to_string(),
            index: None,
        }])
    }

    /// Parse a path on its own (`Params/Param[1]`).
    pub fn parse(text: &str) -> Result<Path, ExprError> {
        let mut p = Parser::new(text)?;
        let path = p.path()?;
        p.expect_end()?;
        Ok(path)
    }

    /// The name of a one-segment path without index.
    pub fn simple_name(&self) -> Option<&str> {
        match self.0.as_slice() {
            [Segment { name, index: None }] => Some(name),
            _ => None,
        }
    }
}

/// A value read from a data item or an instance (text borrowed where it can be).
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Text(Cow<'a, str>),
    Number(f64),
    Bool(bool),
}

impl<'a> Value<'a> {
    /// Borrowed text.
    pub fn text(t: &'a str) -> Value<'a> {
        Value::Text(Cow::Borrowed(t))
    }

    fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            Value::Text(t) => t.trim().parse::<f64>().ok().filter(|f| !f.is_nan()),
            Value::Bool(_) => None,
        }
    }
    fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            Value::Text(t) if t.eq_ignore_ascii_case("true") => Some(true),
            Value::Text(t) if t.eq_ignore_ascii_case("false") => Some(false),
            _ => None,
        }
    }
    /// The value as text.
    pub fn as_text(&self) -> Cow<'_, str> {
        match self {
            Value::Text(t) => Cow::Borrowed(t.as_ref()),
            Value::Number(n) => Cow::Owned(n.to_string()),
            Value::Bool(b) => Cow::Owned(b.to_string()),
        }
    }
}

/// What an expression is evaluated against.
pub trait Subject {
    /// The value at `path`, if present.
    fn lookup(&self, path: &Path) -> Option<Value<'_>>;
    /// Group membership (membership rules only).
    fn contained_in(&self, _group: &str) -> bool {
        false
    }
}

impl Expr {
    /// Parse an expression.
    pub fn parse(text: &str) -> Result<Expr, ExprError> {
        let mut p = Parser::new(text)?;
        let e = p.or(0)?;
        p.expect_end()?;
        Ok(e)
    }

    /// Evaluate against a subject.
    pub fn eval(&self, s: &dyn Subject) -> bool {
        match self {
            Expr::And(xs) => xs.iter().all(|x| x.eval(s)),
            Expr::Or(xs) => xs.iter().any(|x| x.eval(s)),
            Expr::Not(x) => !x.eval(s),
            Expr::Exists(p) => s.lookup(p).is_some(),
            Expr::Contained(g) => s.contained_in(g),
            Expr::Compare { left, op, right } => compare(s, left, *op, right),
        }
    }

    /// Every path the expression reads.
    pub fn paths(&self) -> Vec<&Path> {
        let mut out = Vec::new();
        self.collect_paths(&mut out);
        out
    }

    fn collect_paths<'a>(&'a self, out: &mut Vec<&'a Path>) {
        match self {
            Expr::And(xs) | Expr::Or(xs) => xs.iter().for_each(|x| x.collect_paths(out)),
            Expr::Not(x) => x.collect_paths(out),
            Expr::Exists(p) => out.push(p),
            Expr::Contained(_) => {}
            Expr::Compare { left, right, .. } => {
                for o in [left, right] {
                    if let Operand::Path(p) = o {
                        out.push(p);
                    }
                }
            }
        }
    }

    /// Every group named by `contained(...)`.
    pub fn groups(&self) -> Vec<&str> {
        match self {
            Expr::And(xs) | Expr::Or(xs) => xs.iter().flat_map(|x| x.groups()).collect(),
            Expr::Not(x) => x.groups(),
            Expr::Contained(g) => vec![g.as_str()],
            _ => Vec::new(),
        }
    }

    /// `a and b` flattened.
    pub fn and(parts: Vec<Expr>) -> Expr {
        let mut flat = Vec::new();
        for p in parts {
            match p {
                Expr::And(xs) => flat.extend(xs),
                x => flat.push(x),
            }
        }
        if flat.len() == 1 {
            flat.remove(0)
        } else {
            Expr::And(flat)
        }
    }

    /// `a or b` flattened.
    pub fn or(parts: Vec<Expr>) -> Expr {
        let mut flat = Vec::new();
        for p in parts {
            match p {
                Expr::Or(xs) => flat.extend(xs),
                x => flat.push(x),
            }
        }
        if flat.len() == 1 {
            flat.remove(0)
        } else {
            Expr::Or(flat)
        }
    }
}

fn compare(s: &dyn Subject, left: &Operand, op: CmpOp, right: &Operand) -> bool {
    fn resolve<'v>(s: &'v dyn Subject, o: &'v Operand) -> Option<Value<'v>> {
        match o {
            Operand::Path(p) => s.lookup(p),
            Operand::Text(t) => Some(Value::text(t)),
            Operand::Number(n) => Some(Value::Number(*n)),
            Operand::Bool(b) => Some(Value::Bool(*b)),
            Operand::Pattern(p) => Some(Value::text(&p.source)),
        }
    }
    let resolve = |o| resolve(s, o);
    let Some(lv) = resolve(left) else {
        return false;
    };
    match op {
        CmpOp::Matches | CmpOp::NotMatches | CmpOp::Like | CmpOp::NotLike => {
            let hit = match right {
                Operand::Pattern(p) => p.is_match(&lv.as_text()),
                _ => return false,
            };
            hit == matches!(op, CmpOp::Matches | CmpOp::Like)
        }
        CmpOp::Contains | CmpOp::NotContains => {
            let Some(rv) = resolve(right) else {
                return false;
            };
            lv.as_text().contains(rv.as_text().as_ref()) == (op == CmpOp::Contains)
        }
        _ => {
            let Some(rv) = resolve(right) else {
                return false;
            };
            let ord = match (left, right) {
                (_, Operand::Number(_)) | (Operand::Number(_), _) => {
                    match (lv.as_number(), rv.as_number()) {
                        (Some(a), Some(b)) => a.partial_cmp(&b),
                        _ => None,
                    }
                }
                (_, Operand::Bool(_)) | (Operand::Bool(_), _) => match (lv.as_bool(), rv.as_bool())
                {
                    (Some(a), Some(b)) => Some(a.cmp(&b)),
                    _ => None,
                },
                (_, Operand::Text(_)) | (Operand::Text(_), _) => {
                    Some(lv.as_text().cmp(&rv.as_text()))
                }
                _ => match (lv.as_number(), rv.as_number()) {
                    (Some(a), Some(b)) => a.partial_cmp(&b),
                    _ => Some(lv.as_text().cmp(&rv.as_text())),
                },
            };
            let Some(ord) = ord else {
                return false;
            };
            use std::cmp::Ordering::*;
            match op {
                CmpOp::Eq => ord == Equal,
                CmpOp::Ne => ord != Equal,
                CmpOp::Lt => ord == Less,
                CmpOp::Le => ord != Greater,
                CmpOp::Gt => ord == Greater,
                CmpOp::Ge => ord != Less,
                _ => false,
            }
        }
    }
}

/// A parse error with the character position where it was found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("at character {at}: {message}")]
pub struct ExprError {
    /// 1-based character position.
    pub at: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Slash,
    At,
    Assign,
    Op(&'static str),
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    end: usize,
}

fn lex(text: &str) -> Result<Vec<(Tok, usize)>, ExprError> {
    if text.len() > MAX_LEN {
        return Err(ExprError {
            at: 1,
            message: format!(
                "expression is {} bytes long; at most {MAX_LEN} are accepted",
                text.len()
            ),
        });
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |at: usize, m: String| ExprError {
        at: at + 1,
        message: m,
    };
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => out.push((Tok::LParen, start)),
            ')' => out.push((Tok::RParen, start)),
            '[' => out.push((Tok::LBracket, start)),
            ']' => out.push((Tok::RBracket, start)),
            '/' => out.push((Tok::Slash, start)),
            '@' => out.push((Tok::At, start)),
            '=' | '!' | '<' | '>' => {
                let next = chars.get(i + 1).copied();
                let op = match (c, next) {
                    ('=', Some('=')) => "==",
                    ('!', Some('=')) => "!=",
                    ('<', Some('=')) => "<=",
                    ('>', Some('=')) => ">=",
                    ('<', _) => "<",
                    ('>', _) => ">",
                    ('=', _) => {
                        out.push((Tok::Assign, start));
                        i += 1;
                        continue;
                    }
                    _ => {
                        return Err(err(
                            start,
                            format!("unexpected {c:?} (did you mean \"!=\"?)"),
                        ))
                    }
                };
                i += op.len();
                out.push((Tok::Op(op), start));
                continue;
            }
            '"' | '\'' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err(start, "string is not closed".into())),
                        Some(&q) if q == quote => break,
                        Some('\\') => {
                            let e = chars.get(i + 1).copied();
                            let unescaped = match e {
                                Some('n') => '\n',
                                Some('t') => '\t',
                                Some('\\') => '\\',
                                Some('"') => '"',
                                Some('\'') => '\'',
                                // Other escapes stay as written: regular expressions
                                // (`\d`, `\.`) need no doubling.
                                Some(other) => {
                                    s.push('\\');
                                    other
                                }
                                None => return Err(err(i, "string is not closed".into())),
                            };
                            s.push(unescaped);
                            i += 2;
                            continue;
                        }
                        Some(&ch) => s.push(ch),
                    }
                    i += 1;
                }
                out.push((Tok::Str(s), start));
            }
            c if c.is_ascii_digit()
                || (c == '-'
                    && chars
                        .get(i + 1)
                        .is_some_and(|d| d.is_ascii_digit() || *d == '.'))
                || c == '.' =>
            {
                let mut j = i + 1;
                while j < chars.len()
                    && (chars[j].is_ascii_alphanumeric()
                        || chars[j] == '.'
                        || ((chars[j] == '-' || chars[j] == '+')
                            && matches!(chars[j - 1], 'e' | 'E')))
                {
                    j += 1;
                }
                let lit: String = chars[i..j].iter().collect();
                let n: f64 = lit
                    .parse()
                    .ok()
                    .filter(|f: &f64| f.is_finite())
                    .ok_or_else(|| err(start, format!("{lit:?} is not a number")))?;
                out.push((Tok::Num(n), start));
                i = j;
                continue;
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut j = i + 1;
                while j < chars.len()
                    && (chars[j].is_alphanumeric()
                        || chars[j] == '_'
                        || chars[j] == '.'
                        || chars[j] == '-'
                        || chars[j] == ':')
                {
                    j += 1;
                }
                out.push((Tok::Ident(chars[i..j].iter().collect()), start));
                i = j;
                continue;
            }
            other => return Err(err(start, format!("unexpected character {other:?}"))),
        }
        i += 1;
    }
    Ok(out)
}

const KEYWORDS: [&str; 9] = [
    "and",
    "or",
    "not",
    "exists",
    "contained",
    "matches",
    "like",
    "contains",
    "true",
];

fn is_keyword(s: &str) -> bool {
    KEYWORDS.contains(&s) || s == "false"
}

impl Parser {
    fn new(text: &str) -> Result<Parser, ExprError> {
        let toks = lex(text)?;
        Ok(Parser {
            toks,
            pos: 0,
            end: text.chars().count(),
        })
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }

    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |(_, p)| *p) + 1
    }

    fn fail<T>(&self, message: impl Into<String>) -> Result<T, ExprError> {
        Err(ExprError {
            at: self.at(),
            message: message.into(),
        })
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s == w)
    }

    fn eat_word(&mut self, w: &str) -> bool {
        if self.is_word(w) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, t: Tok, what: &str) -> Result<(), ExprError> {
        if self.peek() == Some(&t) {
            self.pos += 1;
            Ok(())
        } else {
            self.fail(format!("expected {what}"))
        }
    }

    fn expect_end(&self) -> Result<(), ExprError> {
        match self.peek() {
            None => Ok(()),
            Some(_) => self
                .fail("unexpected text after the end of the expression (missing \"and\"/\"or\"?)"),
        }
    }

    fn or(&mut self, depth: usize) -> Result<Expr, ExprError> {
        let mut parts = vec![self.and(depth)?];
        while self.eat_word("or") {
            parts.push(self.and(depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::Or(parts)
        })
    }

    fn and(&mut self, depth: usize) -> Result<Expr, ExprError> {
        let mut parts = vec![self.unary(depth)?];
        while self.eat_word("and") {
            parts.push(self.unary(depth)?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Expr::And(parts)
        })
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, ExprError> {
        if depth >= MAX_DEPTH {
            return self.fail(format!("nested more than {MAX_DEPTH} deep"));
        }
        if self.eat_word("not") {
            return Ok(Expr::Not(Box::new(self.unary(depth + 1)?)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let e = self.or(depth + 1)?;
            self.expect(Tok::RParen, "\")\"")?;
            return Ok(e);
        }
        if self.is_word("exists") && self.toks.get(self.pos + 1).map(|t| &t.0) == Some(&Tok::LParen)
        {
            self.pos += 2;
            let p = self.path()?;
            self.expect(Tok::RParen, "\")\" after the path")?;
            return Ok(Expr::Exists(p));
        }
        if self.is_word("contained")
            && self.toks.get(self.pos + 1).map(|t| &t.0) == Some(&Tok::LParen)
        {
            self.pos += 2;
            let g = match self.peek() {
                Some(Tok::Str(s)) => s.clone(),
                _ => {
                    return self
                        .fail("expected the group id as a string, e.g. contained(\"My.Group\")")
                }
            };
            self.pos += 1;
            self.expect(Tok::RParen, "\")\"")?;
            return Ok(Expr::Contained(g));
        }
        let left = self.operand()?;
        let op = self.op()?;
        let right = match op {
            CmpOp::Matches | CmpOp::NotMatches | CmpOp::Like | CmpOp::NotLike => {
                let at = self.at();
                let src = match self.peek() {
                    Some(Tok::Str(s)) => s.clone(),
                    _ => return self.fail("expected the pattern as a string"),
                };
                self.pos += 1;
                let compiled = if matches!(op, CmpOp::Matches | CmpOp::NotMatches) {
                    Pattern::regex(&src)
                } else {
                    Pattern::wildcard(&src)
                };
                Operand::Pattern(compiled.map_err(|message| ExprError { at, message })?)
            }
            _ => self.operand()?,
        };
        Ok(Expr::Compare { left, op, right })
    }

    fn op(&mut self) -> Result<CmpOp, ExprError> {
        let op = match self.peek() {
            Some(Tok::Op(o)) => match *o {
                "==" => CmpOp::Eq,
                "!=" => CmpOp::Ne,
                "<" => CmpOp::Lt,
                "<=" => CmpOp::Le,
                ">" => CmpOp::Gt,
                _ => CmpOp::Ge,
            },
            Some(Tok::Assign) => return self.fail("expected a comparison: use \"==\", not \"=\""),
            Some(Tok::Ident(w)) => match w.as_str() {
                "matches" => CmpOp::Matches,
                "like" => CmpOp::Like,
                "contains" => CmpOp::Contains,
                "not" => {
                    self.pos += 1;
                    return match self.peek() {
                        Some(Tok::Ident(w)) if w == "matches" => {
                            self.pos += 1;
                            Ok(CmpOp::NotMatches)
                        }
                        Some(Tok::Ident(w)) if w == "like" => {
                            self.pos += 1;
                            Ok(CmpOp::NotLike)
                        }
                        Some(Tok::Ident(w)) if w == "contains" => {
                            self.pos += 1;
                            Ok(CmpOp::NotContains)
                        }
                        _ => self
                            .fail("expected \"matches\", \"like\" or \"contains\" after \"not\""),
                    };
                }
                _ => return self.fail(format!("expected a comparison operator, found {w:?}")),
            },
            _ => return self.fail(
                "expected a comparison operator (==, !=, <, <=, >, >=, matches, like, contains)",
            ),
        };
        self.pos += 1;
        Ok(op)
    }

    fn operand(&mut self) -> Result<Operand, ExprError> {
        match self.peek().cloned() {
            Some(Tok::Str(s)) => {
                self.pos += 1;
                Ok(Operand::Text(s))
            }
            Some(Tok::Num(n)) => {
                self.pos += 1;
                Ok(Operand::Number(n))
            }
            Some(Tok::Ident(w)) if w == "true" || w == "false" => {
                self.pos += 1;
                Ok(Operand::Bool(w == "true"))
            }
            Some(Tok::Ident(_)) => Ok(Operand::Path(self.path()?)),
            None => self.fail("expression ends where a value was expected"),
            Some(_) => self.fail("expected a value: a path, a string, a number, true or false"),
        }
    }

    fn path(&mut self) -> Result<Path, ExprError> {
        let mut segs = Vec::new();
        loop {
            let name = match self.peek() {
                Some(Tok::Ident(w)) if !is_keyword(w) => w.clone(),
                Some(Tok::Ident(w)) => {
                    return self.fail(format!("{w:?} is a keyword; it cannot name a field"))
                }
                _ => return self.fail("expected a field name"),
            };
            self.pos += 1;
            let index = if self.peek() == Some(&Tok::LBracket) {
                self.pos += 1;
                let idx = match self.peek().cloned() {
                    Some(Tok::Num(n)) if n >= 1.0 && n.fract() == 0.0 && n <= u32::MAX as f64 => {
                        self.pos += 1;
                        Index::Position(n as u32)
                    }
                    Some(Tok::At) => {
                        self.pos += 1;
                        let name = match self.peek() {
                            Some(Tok::Ident(w)) => w.clone(),
                            _ => return self.fail("expected an attribute name after \"@\""),
                        };
                        self.pos += 1;
                        self.expect(Tok::Assign, "\"=\" in [@Name=\"value\"]")?;
                        let value = match self.peek() {
                            Some(Tok::Str(s)) => s.clone(),
                            _ => return self.fail("expected a string in [@Name=\"value\"]"),
                        };
                        self.pos += 1;
                        Index::Attribute { name, value }
                    }
                    _ => {
                        return self
                            .fail("expected a position (1, 2, ...) or @Name=\"value\" in [...]")
                    }
                };
                self.expect(Tok::RBracket, "\"]\"")?;
                Some(idx)
            } else {
                None
            };
            segs.push(Segment { name, index });
            if self.peek() == Some(&Tok::Slash) {
                self.pos += 1;
            } else {
                break;
            }
        }
        Ok(Path(segs))
    }
}

fn write_str_lit(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            f.write_str(&s.name)?;
            match &s.index {
                None => {}
                Some(Index::Position(n)) => write!(f, "[{n}]")?,
                Some(Index::Attribute { name, value }) => {
                    write!(f, "[@{name}=")?;
                    write_str_lit(f, value)?;
                    f.write_str("]")?;
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Path(p) => write!(f, "{p}"),
            Operand::Text(s) => write_str_lit(f, s),
            Operand::Pattern(p) => write_str_lit(f, &p.source),
            Operand::Number(n) => {
                if n.fract() == 0.0 && n.abs() < 1e15 {
                    write!(f, "{}", *n as i64)
                } else {
                    write!(f, "{n:?}")
                }
            }
            Operand::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let child = |f: &mut fmt::Formatter<'_>, e: &Expr| -> fmt::Result {
            match e {
                Expr::And(_) | Expr::Or(_) => write!(f, "({e})"),
                _ => write!(f, "{e}"),
            }
        };
        match self {
            Expr::And(xs) | Expr::Or(xs) => {
                let sep = if matches!(self, Expr::And(_)) {
                    " and "
                } else {
                    " or "
                };
                for (i, x) in xs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(sep)?;
                    }
                    child(f, x)?;
                }
                Ok(())
            }
            Expr::Not(x) => {
                f.write_str("not ")?;
                match **x {
                    Expr::Compare { .. } => write!(f, "({x})"),
                    _ => child(f, x),
                }
            }
            Expr::Exists(p) => write!(f, "exists({p})"),
            Expr::Contained(g) => {
                f.write_str("contained(")?;
                write_str_lit(f, g)?;
                f.write_str(")")
            }
            Expr::Compare { left, op, right } => write!(f, "{left} {} {right}", op.text()),
        }
    }
}

impl Serialize for Expr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Expr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Expr::parse(&text)
            .map_err(|e| serde::de::Error::custom(format!("expression {text:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct Item(BTreeMap<String, Value<'static>>, Vec<&'static str>);
    impl Subject for Item {
        fn lookup(&self, path: &Path) -> Option<Value<'_>> {
            self.0.get(&path.to_string()).cloned()
        }
        fn contained_in(&self, group: &str) -> bool {
            self.1.contains(&group)
        }
    }
    fn item(pairs: &[(&str, Value<'static>)]) -> Item {
        Item(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            vec!["G1"],
        )
    }
    fn t(s: &str) -> Value<'static> {
        Value::Text(Cow::Owned(s.to_string()))
    }

    #[test]
    fn comparisons_follow_the_literal_type() {
        let it = item(&[
            ("EventId", t("7036")),
            ("Level", Value::Number(2.0)),
            ("Name", t("sshd")),
        ]);
        for (src, want) in [
            ("EventId == 7036", true),
            ("EventId > 100", true),
            ("EventId == \"7036\"", true),
            ("EventId < \"8\"", true), // text order
            ("Level >= 2 and Name == \"sshd\"", true),
            ("Level > 2 or Name != \"sshd\"", false),
            ("not (Level > 2)", true),
            ("Name > 3", false),  // not a number: false
            ("Name != 3", false), // whatever the operator
            ("Missing == 1", false),
            ("Missing != 1", false),
            ("exists(Missing)", false),
            ("exists(Name)", true),
            ("Name matches \"^ss\"", true),
            ("Name not matches \"^ss\"", false),
            ("Name like \"SS*\"", true), // wildcards ignore case
            ("Name like \"s?hd\"", true),
            ("Name like \"ss\"", false), // whole value
            ("Name contains \"sh\"", true),
            ("Name matches \"^s\\w+d$\"", true), // \w stays a regex escape
            ("Name not contains \"x\"", true),
            ("contained(\"G1\") and not contained(\"G2\")", true),
        ] {
            let e = Expr::parse(src).unwrap_or_else(|e| panic!("{src}: {e}"));
            assert_eq!(e.eval(&it), want, "{src}");
        }
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let e = Expr::parse("a == 1 or b == 1 and c == 1").expect("parses");
        match e {
            Expr::Or(xs) => assert!(matches!(xs[1], Expr::And(_))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn paths_with_indexes() {
        let p = Path::parse("Params/Param[1]").expect("parses");
        assert_eq!(p.0.len(), 2);
        assert_eq!(p.0[1].index, Some(Index::Position(1)));
        let p = Path::parse("Property[@Name=\"State\"]").expect("parses");
        assert_eq!(p.to_string(), "Property[@Name=\"State\"]");
    }

    #[test]
    fn bad_expressions_say_where() {
        for (src, at, needle) in [
            ("", 1, "ends where a value"),
            ("a ==", 5, "ends where a value"),
            ("a = 1", 3, "use \"==\""),
            ("a == 1 b == 2", 8, "after the end"),
            ("(a == 1", 8, "\")\""),
            ("a matches \"(\"", 11, "regular expression"),
            ("a == \"open", 6, "not closed"),
            ("a == 1e999", 6, "not a number"),
            ("and == 1", 1, "keyword"),
            ("a # 1", 3, "unexpected character"),
            ("contained(G)", 11, "group id"),
            ("x[0] == 1", 3, "position"),
        ] {
            let e = Expr::parse(src).expect_err(src);
            assert_eq!(e.at, at, "{src}: {e}");
            assert!(e.message.contains(needle), "{src}: {e}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_crash() {
        let src = format!("{}a == 1{}", "(".repeat(10_000), ")".repeat(10_000));
        let e = Expr::parse(&src).expect_err("too deep");
        assert!(e.message.contains("nested"), "{e}");
        let src = format!("{}a == 1", "not ".repeat(10_000));
        assert!(Expr::parse(&src).is_err());
        assert!(Expr::parse(&"a".repeat(MAX_LEN + 1)).is_err());
    }
}
