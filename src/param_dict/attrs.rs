//! `ParameterDict::get`'s attribute matching: requested attributes, shape
//! merging (unknown dims filled in) and MXNet's conflict message.

use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ndarray::SType;
use crate::parameter::{shape_str, GradReq, Parameter};

/// Attributes requested from [`ParameterDict::get`](super::ParameterDict::get); `None` means "not given".
#[derive(Debug, Clone, Default)]
pub struct ParamAttrs {
    /// Shape (0 = unknown dim).
    pub shape: Option<Vec<usize>>,
    /// Data type.
    pub dtype: Option<DType>,
    /// Gradient request.
    pub grad_req: Option<GradReq>,
    /// Learning-rate multiplier.
    pub lr_mult: Option<f64>,
    /// Weight-decay multiplier.
    pub wd_mult: Option<f64>,
    /// Whether initialisation may be deferred.
    pub allow_deferred_init: Option<bool>,
    /// Whether the parameter takes gradients.
    pub differentiable: Option<bool>,
    /// Storage type of the data.
    pub stype: Option<SType>,
    /// Storage type of the gradient.
    pub grad_stype: Option<SType>,
}

impl ParamAttrs {
    /// Whether no attribute is given.
    pub fn is_empty(&self) -> bool {
        let ParamAttrs {
            shape,
            dtype,
            grad_req,
            lr_mult,
            wd_mult,
            allow_deferred_init,
            differentiable,
            stype,
            grad_stype,
        } = self;
        shape.is_none()
            && dtype.is_none()
            && grad_req.is_none()
            && lr_mult.is_none()
            && wd_mult.is_none()
            && allow_deferred_init.is_none()
            && differentiable.is_none()
            && stype.is_none()
            && grad_stype.is_none()
    }
}

/// MXNet's error for `get` of an existing parameter whose attribute `attr`
/// is `stored` where `desired` was asked for (also raised by bindings for
/// attributes they keep themselves).
pub fn attribute_conflict(name: &str, attr: &str, desired: &str, stored: &str) -> Error {
    Error::AttributeConflict(format!(
        "Cannot retrieve Parameter '{name}' because desired attribute does not match with \
         stored for attribute '{attr}': desired '{desired}' vs stored '{stored}'."
    ))
}

/// Merges a requested shape into an existing one: same rank, and each pair of
/// dims equal or one of them unknown (0).
pub fn merge_shape(desired: &[usize], stored: &[usize]) -> Option<Vec<usize>> {
    if desired.len() != stored.len() {
        return None;
    }
    desired
        .iter()
        .zip(stored)
        .map(|(&a, &b)| match (a, b) {
            _ if a == b => Some(a),
            (0, _) => Some(b),
            (_, 0) => Some(a),
            _ => None,
        })
        .collect()
}

pub(super) fn merge_attrs(p: &mut Parameter, name: &str, attrs: &ParamAttrs) -> Result<()> {
    if let Some(shape) = &attrs.shape {
        match p.shape().map(<[usize]>::to_vec) {
            None => p.set_shape_unchecked(shape.clone()),
            Some(stored) => match merge_shape(shape, &stored) {
                Some(merged) => p.set_shape_unchecked(merged),
                None => {
                    return Err(attribute_conflict(
                        name,
                        "shape",
                        &shape_str(shape),
                        &shape_str(&stored),
                    ));
                }
            },
        }
    }
    let check = |attr: &str, ok: bool, desired: String, stored: String| {
        if ok {
            Ok(())
        } else {
            Err(attribute_conflict(name, attr, &desired, &stored))
        }
    };
    if let Some(d) = attrs.dtype {
        check(
            "dtype",
            d == p.dtype(),
            d.to_string(),
            p.dtype().to_string(),
        )?;
    }
    if let Some(r) = attrs.grad_req {
        let g = p.grad_req();
        check("grad_req", r == g, r.to_string(), g.to_string())?;
    }
    if let Some(v) = attrs.lr_mult {
        check(
            "lr_mult",
            v == p.lr_mult,
            format!("{v:?}"),
            format!("{:?}", p.lr_mult),
        )?;
    }
    if let Some(v) = attrs.wd_mult {
        check(
            "wd_mult",
            v == p.wd_mult,
            format!("{v:?}"),
            format!("{:?}", p.wd_mult),
        )?;
    }
    if let Some(v) = attrs.allow_deferred_init {
        let s = p.allow_deferred_init();
        check("allow_deferred_init", v == s, v.to_string(), s.to_string())?;
    }
    if let Some(v) = attrs.differentiable {
        let s = p.differentiable();
        check("differentiable", v == s, v.to_string(), s.to_string())?;
    }
    if let Some(v) = attrs.stype {
        check(
            "stype",
            v == p.stype(),
            v.to_string(),
            p.stype().to_string(),
        )?;
    }
    if let Some(v) = attrs.grad_stype {
        let s = p.grad_stype();
        check("grad_stype", v == s, v.to_string(), s.to_string())?;
    }
    Ok(())
}
