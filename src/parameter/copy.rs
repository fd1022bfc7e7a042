//! Copies of a parameter: what `copy.copy`, `copy.deepcopy` and pickling of
//! a Gluon `Parameter` carry (its attributes, the copy per context, the
//! gradients, a pending deferred initialisation, a constant's value) and
//! rebuilding a parameter from them, checked so that a rebuilt parameter
//! keeps the invariants every other operation relies on.

use super::{next_version, CtxMap, DeferredInit, GradReq, Parameter};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::ndarray::NDArray;

/// The arrays of an initialised parameter.
#[derive(Debug, Clone)]
pub struct ParameterArrays {
    /// The contexts, in order.
    pub ctx: Vec<Context>,
    /// One copy per context.
    pub data: Vec<NDArray>,
    /// One gradient per context, `None` when `grad_req` is `null`.
    pub grad: Option<Vec<NDArray>>,
}

impl Parameter {
    /// The arrays (handles sharing storage with this parameter's), or `None`
    /// while uninitialised.
    pub fn arrays(&self) -> Option<ParameterArrays> {
        let data = self.data.clone()?;
        Some(ParameterArrays {
            ctx: self.ctx.contexts().to_vec(),
            data,
            grad: self.grad.clone(),
        })
    }

    /// Takes `arrays` as this (uninitialised) parameter's data and gradients:
    /// one copy per context, each with the parameter's shape and dtype and on
    /// its context, gradients alike and present exactly when `grad_req` is
    /// not `null`. Nothing changes on an error.
    pub fn adopt_arrays(&mut self, arrays: ParameterArrays) -> Result<()> {
        let bad = |what: String| Error::invalid(format!("Parameter '{}': {what}", self.name));
        let ParameterArrays { ctx, data, grad } = arrays;
        if ctx.is_empty() || data.len() != ctx.len() {
            return Err(bad(format!(
                "{} copies for {} contexts",
                data.len(),
                ctx.len()
            )));
        }
        let wants_grad = self.grad_req != GradReq::Null;
        match (&grad, wants_grad) {
            (Some(g), true) if g.len() == ctx.len() => {}
            (None, false) => {}
            _ => {
                return Err(bad(format!(
                    "gradients do not match grad_req='{}'",
                    self.grad_req
                )))
            }
        }
        let shape = self
            .shape
            .clone()
            .unwrap_or_else(|| data[0].shape().to_vec());
        let fits = |a: &NDArray, c: &Context| {
            a.shape() == shape.as_slice() && a.dtype() == self.dtype && a.context() == *c
        };
        let all_fit = data.iter().zip(&ctx).all(|(a, c)| fits(a, c))
            && grad.iter().flatten().zip(&ctx).all(|(a, c)| fits(a, c));
        if !all_fit {
            return Err(bad(format!(
                "arrays do not match shape {}, dtype {} and contexts {}",
                super::shape_str(&shape),
                self.dtype,
                super::ctx_list_str(&ctx)
            )));
        }
        self.shape = Some(shape);
        self.ctx = CtxMap::new(&ctx);
        self.data = Some(data);
        self.set_grad_buffers(grad);
        self.deferred = None;
        self.version = next_version();
        Ok(())
    }

    /// Records a pending deferred initialisation on an uninitialised
    /// parameter (a copy of another's); an error once initialised.
    pub fn set_deferred(&mut self, record: DeferredInit) -> Result<()> {
        if self.data.is_some() {
            return Err(Error::invalid(format!(
                "Parameter '{}' is initialized: it has no deferred initialization",
                self.name
            )));
        }
        self.deferred = Some(record);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;

    #[test]
    fn arrays_round_trip_and_are_checked() {
        let mut p = Parameter::new("w").with_shape(&[2, 3]);
        p.request_init(&[Context::cpu(0), Context::cpu(1)], None, false)
            .expect("request");
        let zeros = p.zeros_host().expect("zeros");
        p.take_deferred().expect("take");
        p.init_from_host(&zeros, &[Context::cpu(0), Context::cpu(1)])
            .expect("init");
        let arrays = p.arrays().expect("initialised");
        let mut q = Parameter::new("w").with_shape(&[2, 3]);
        q.adopt_arrays(arrays.clone()).expect("adopt");
        assert_eq!(q.list_ctx().expect("ctx"), arrays.ctx);
        // Shared storage: a write through one is seen by the other.
        q.list_data().expect("data")[1]
            .buffer()
            .write()
            .expect("write")
            .fill(7);
        assert!(p.list_data().expect("data")[1]
            .buffer()
            .read()
            .iter()
            .all(|&b| b == 7));
        let mut wrong_dtype = Parameter::new("w").with_dtype(DType::Float16);
        assert!(wrong_dtype.adopt_arrays(arrays.clone()).is_err());
        let mut no_grad = Parameter::new("w").with_grad_req(GradReq::Null);
        assert!(no_grad.adopt_arrays(arrays.clone()).is_err());
        let mut short = Parameter::new("w");
        let mut fewer = arrays;
        fewer.data.pop();
        assert!(short.adopt_arrays(fewer).is_err());
        assert!(short.list_data().is_err(), "nothing changed");
    }
}
