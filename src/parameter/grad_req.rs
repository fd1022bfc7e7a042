//! `GradReq`: how a parameter's gradient buffer is updated, spelled as MXNet spells it.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Gradient request: `write` overwrites, `add` accumulates, `null` keeps no gradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum GradReq {
    /// Each gradient overwrites the buffer.
    #[default]
    Write,
    /// Gradients accumulate until `zero_grad`.
    Add,
    /// No gradient buffer.
    Null,
}

impl GradReq {
    /// MXNet's spelling.
    pub fn name(self) -> &'static str {
        match self {
            GradReq::Write => "write",
            GradReq::Add => "add",
            GradReq::Null => "null",
        }
    }
}

impl FromStr for GradReq {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "write" => Ok(GradReq::Write),
            "add" => Ok(GradReq::Add),
            "null" => Ok(GradReq::Null),
            _ => Err(Error::invalid(format!(
                "grad_req must be one of 'write', 'add', or 'null', but got '{s}'"
            ))),
        }
    }
}

impl fmt::Display for GradReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for r in [GradReq::Write, GradReq::Add, GradReq::Null] {
            assert_eq!(r.to_string().parse::<GradReq>().ok(), Some(r));
        }
        let e = "sum".parse::<GradReq>().expect_err("bad");
        assert!(e.to_string().contains("but got 'sum'"));
    }
}
