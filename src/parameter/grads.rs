//! The gradient side of a parameter: the `grad_req` state machine, gradient
//! buffers and their access, and delivery of computed gradients (`write`
//! overwrites, `add` accumulates, `null` refuses) — the primitive autograd
//! adapters use.

use super::{next_version, shape_str, GradReq, Parameter};
use crate::context::Context;
use crate::convert;
use crate::error::{Error, Result};
use crate::ndarray::{NDArray, SType};
use crate::reduce;

impl Parameter {
    /// Sets the gradient request: entering `null` drops the gradient buffers,
    /// leaving it allocates zeroed ones on every context. A non-differentiable
    /// parameter stays `null`. Before initialisation the value is only recorded.
    pub fn set_grad_req(&mut self, req: GradReq) -> Result<()> {
        let req = if self.differentiable {
            req
        } else {
            GradReq::Null
        };
        if self.grad_req == req {
            return Ok(());
        }
        self.grad_req = req;
        if req == GradReq::Null {
            if self.grad.is_some() {
                self.version = next_version();
            }
            self.set_grad_buffers(None);
        } else if self.data.is_some() {
            self.init_grad()?;
        }
        Ok(())
    }

    pub(super) fn init_grad(&mut self) -> Result<()> {
        self.version = next_version();
        if self.grad_req == GradReq::Null {
            self.set_grad_buffers(None);
            return Ok(());
        }
        let data = self.data.as_deref().unwrap_or_default();
        let grads = data
            .iter()
            .map(|d| match self.grad_stype {
                SType::Default => NDArray::zeros(d.shape(), d.dtype(), d.context()),
                st => crate::sparse::zeros(st, d.shape(), d.dtype(), d.context()),
            })
            .collect::<Result<Vec<_>>>()?;
        self.set_grad_buffers(Some(grads));
        Ok(())
    }

    /// Index of the gradient for `ctx`, with MXNet's errors.
    #[inline]
    pub fn grad_index(&self, ctx: Option<Context>) -> Result<usize> {
        match (&self.data, &self.grad) {
            (Some(_), None) => Err(self.no_grad()),
            (_, Some(g)) => self.index_in(g.len(), ctx),
            (None, None) => Err(self.not_initialized()),
        }
    }

    pub(super) fn no_grad(&self) -> Error {
        Error::NoGradient(format!(
            "Cannot get gradient array for Parameter '{}' because grad_req='null'",
            self.name
        ))
    }

    /// The gradient on `ctx`.
    pub fn grad(&self, ctx: Option<Context>) -> Result<NDArray> {
        let i = self.grad_index(ctx)?;
        Ok(self.grad.as_deref().unwrap_or_default()[i].clone())
    }

    /// All gradients, in context order.
    pub fn list_grad(&self) -> Result<&[NDArray]> {
        match (&self.data, &self.grad) {
            (Some(_), None) => Err(self.no_grad()),
            (_, Some(g)) => Ok(g),
            (None, None) => Err(self.not_initialized()),
        }
    }

    /// The gradient buffers, if any (no error when there are none).
    pub fn grads(&self) -> Option<&[NDArray]> {
        self.grad.as_deref()
    }

    /// Zeroes every gradient buffer (a no-op without gradients).
    pub fn zero_grad(&self) -> Result<()> {
        for g in self.grad.as_deref().unwrap_or_default() {
            match g.stype() {
                // MXNet's zeros_like: a sparse gradient keeps nothing stored.
                SType::Default => g.buffer().fill_zero()?,
                _ => crate::sparse::clear(g)?,
            }
        }
        Ok(())
    }

    /// Delivers a gradient computed for the copy on `ctx`: `write` overwrites,
    /// `add` accumulates, `null` refuses with `NoGradient`. The source may be of
    /// another dtype (it is converted).
    /// A delivered gradient is fresh: it marks its copy for `Trainer.step`.
    pub fn deliver_grad(&self, ctx: Option<Context>, src: &NDArray) -> Result<()> {
        let (i, dst) = self.grad_for_delivery(ctx)?;
        self.write_grad(dst, src)?;
        self.mark_fresh_at(i);
        Ok(())
    }

    fn write_grad(&self, dst: &NDArray, src: &NDArray) -> Result<()> {
        if dst.stype() != SType::Default || src.stype() != SType::Default {
            return crate::sparse::deliver(dst, src, self.grad_req == GradReq::Add);
        }
        if src.size() != dst.size() {
            return Err(Error::ShapeMismatch(format!(
                "gradient of shape {} delivered to Parameter '{}' of shape {}",
                shape_str(src.shape()),
                self.name,
                shape_str(dst.shape())
            )));
        }
        match self.grad_req {
            GradReq::Add if src.dtype() == dst.dtype() => {
                let s = src.reshaped(dst.shape().to_vec())?;
                reduce::accumulate(dst, &s)
            }
            GradReq::Add => {
                let s = convert::cast(src, dst.dtype())?.reshaped(dst.shape().to_vec())?;
                reduce::accumulate(dst, &s)
            }
            _ => convert::assign_cast(dst, src),
        }
    }

    /// Like [`Parameter::deliver_grad`] with raw little-endian bytes of the
    /// parameter's dtype.
    pub fn deliver_grad_bytes(&self, ctx: Option<Context>, bytes: &[u8]) -> Result<()> {
        let (i, dst) = self.grad_for_delivery(ctx)?;
        if dst.stype() != SType::Default {
            let src = NDArray::from_bytes(bytes, dst.shape(), dst.dtype(), Context::cpu(0))?;
            return self.deliver_grad(ctx, &src);
        }
        self.write_grad_bytes(dst, bytes)?;
        self.mark_fresh_at(i);
        Ok(())
    }

    fn write_grad_bytes(&self, dst: &NDArray, bytes: &[u8]) -> Result<()> {
        if bytes.len() != dst.nbytes() {
            return Err(Error::ShapeMismatch(format!(
                "gradient of {} bytes delivered to Parameter '{}' of {} bytes",
                bytes.len(),
                self.name,
                dst.nbytes()
            )));
        }
        if dst.buffer().is_device() {
            // Device gradients: stage through the host (no device kernels).
            return match self.grad_req {
                GradReq::Add => {
                    let mut sum = dst.buffer().try_read()?.to_vec();
                    reduce::accumulate_bytes(&mut sum, bytes, dst.dtype())?;
                    dst.buffer().upload(&sum)
                }
                _ => dst.buffer().upload(bytes),
            };
        }
        let mut d = dst.buffer().write()?;
        match self.grad_req {
            GradReq::Add => reduce::accumulate_bytes(&mut d, bytes, dst.dtype()),
            _ => {
                crate::storage::copy_bytes(&mut d, bytes);
                Ok(())
            }
        }
    }

    /// The index and buffer a gradient for `ctx` is delivered into.
    pub(super) fn grad_for_delivery(&self, ctx: Option<Context>) -> Result<(usize, &NDArray)> {
        if self.grad_req == GradReq::Null {
            return Err(self.no_grad());
        }
        let i = self.grad_index(ctx)?;
        self.grad
            .as_deref()
            .and_then(|g| g.get(i))
            .map(|g| (i, g))
            .ok_or_else(|| self.no_grad())
    }
}

impl Parameter {
    /// Makes `grad` the gradient buffer on `ctx`, with the current gradient's
    /// values copied in (it must have that gradient's shape, dtype and
    /// context, and be dense and writable), and bumps the version so cached
    /// views are refreshed. Lets gradients live in memory the caller lays
    /// out, e.g. inside one communication bucket (`crate::grad_bucket`).
    pub fn replace_grad(&mut self, ctx: Option<Context>, grad: NDArray) -> Result<()> {
        use crate::ndarray::SType;
        let (i, old) = self.grad_for_delivery(ctx)?;
        if grad.shape() != old.shape()
            || grad.dtype() != old.dtype()
            || grad.context() != old.context()
            || grad.stype() != SType::Default
            || old.stype() != SType::Default
            || !grad.buffer().is_writable()
        {
            return Err(Error::ShapeMismatch(format!(
                "Parameter '{}': a replacement gradient must be a dense, writable {} array of \
                 shape {} on {}",
                self.name,
                old.dtype(),
                shape_str(old.shape()),
                old.context()
            )));
        }
        crate::storage::copy_buffer(grad.buffer(), old.buffer())?;
        if let Some(g) = self.grad.as_mut().and_then(|g| g.get_mut(i)) {
            *g = grad;
        }
        self.version = next_version();
        Ok(())
    }
}
