//! Gradient freshness per copy: MXNet's `_fresh_grad`, which autograd sets
//! when a backward pass writes a copy's gradient and which `Trainer.step`
//! reads (stale gradients raise, or are skipped with `ignore_stale_grad`)
//! and clears after updating that copy.
//!
//! The flags are atomics so that gradient delivery, which runs under the
//! parameter's read lock (possibly from several autograd threads at once),
//! can set them. Every time the gradient buffers are re-created (initialise,
//! `grad_req` change, cast, `reset_ctx`) the copies start stale, as MXNet's
//! `mark_variables` starts them.

use std::sync::atomic::{AtomicBool, Ordering};

use super::Parameter;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::ndarray::NDArray;

/// One flag per gradient buffer, in context order.
#[derive(Debug, Default)]
pub(super) struct FreshFlags(Vec<AtomicBool>);

impl FreshFlags {
    /// `n` stale flags.
    pub(super) fn stale(n: usize) -> FreshFlags {
        FreshFlags((0..n).map(|_| AtomicBool::new(false)).collect())
    }

    fn get(&self, i: usize) -> bool {
        self.0.get(i).is_some_and(|f| f.load(Ordering::Acquire))
    }

    fn take(&self, i: usize) -> bool {
        self.0
            .get(i)
            .is_some_and(|f| f.swap(false, Ordering::AcqRel))
    }

    fn set(&self, i: usize, fresh: bool) -> bool {
        match self.0.get(i) {
            Some(f) => {
                f.store(fresh, Ordering::Release);
                true
            }
            None => false,
        }
    }
}

impl Parameter {
    /// Installs new gradient buffers (or none). Every copy starts stale, as
    /// MXNet's `mark_variables` starts it: the one place buffers are
    /// replaced wholesale, so the flags always match them. (Buffers moved
    /// into a bucket by `replace_grad` keep their flags.)
    pub(super) fn set_grad_buffers(&mut self, grad: Option<Vec<NDArray>>) {
        self.fresh = FreshFlags::stale(grad.as_ref().map_or(0, Vec::len));
        self.grad = grad;
    }

    /// Index of the copy on `ctx` for freshness, with `data()`'s errors.
    fn fresh_index(&self, ctx: Option<Context>) -> Result<usize> {
        match &self.data {
            Some(d) => self.index_in(d.len(), ctx),
            None => Err(self.not_initialized()),
        }
    }

    /// Whether the gradient on `ctx` was delivered by a backward pass since
    /// the flag was last cleared (false without gradients, as MXNet answers
    /// for an array that is no autograd variable).
    pub fn fresh_grad(&self, ctx: Option<Context>) -> Result<bool> {
        let i = self.fresh_index(ctx)?;
        Ok(self.fresh.get(i))
    }

    /// Sets the freshness of the gradient on `ctx`. Without gradients
    /// (`grad_req='null'`) there is no gradient state to set: MXNet's error.
    pub fn set_fresh_grad(&self, ctx: Option<Context>, fresh: bool) -> Result<()> {
        let i = self.fresh_index(ctx)?;
        if self.grad.is_none() || !self.fresh.set(i, fresh) {
            return Err(Error::NoGradient(format!(
                "Parameter '{}': its data on {} has not been marked as a variable and does \
                 not have gradient state (grad_req='null')",
                self.name,
                self.ctx
                    .contexts()
                    .get(i)
                    .map_or_else(|| "?".to_string(), ToString::to_string)
            )));
        }
        Ok(())
    }

    /// The freshness of every copy, in context order (empty without gradients).
    pub fn fresh_grads(&self) -> Vec<bool> {
        (0..self.grad.as_ref().map_or(0, Vec::len))
            .map(|i| self.fresh.get(i))
            .collect()
    }

    /// The freshness of every copy, clearing it: what an update that
    /// consumed every fresh gradient leaves (stale copies stay stale).
    pub fn take_fresh_grads(&self) -> Vec<bool> {
        (0..self.grad.as_ref().map_or(0, Vec::len))
            .map(|i| self.fresh.take(i))
            .collect()
    }

    /// Marks the copy at `index` fresh (a gradient was just delivered there).
    pub(super) fn mark_fresh_at(&self, index: usize) {
        self.fresh.set(index, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtype::DType;
    use crate::ndarray::NDArray;
    use crate::parameter::GradReq;

    fn two_copies() -> Parameter {
        let a = NDArray::from_bytes(&[0, 0, 128, 63], &[1], DType::Float32, Context::cpu(0))
            .expect("array");
        let mut p = Parameter::new("w").with_shape(&[1]);
        p.init_from_host(&a, &[Context::cpu(0), Context::cpu(1)])
            .expect("init");
        p
    }

    #[test]
    fn copies_start_stale_and_delivery_marks_its_copy() {
        let p = two_copies();
        assert_eq!(p.fresh_grads(), [false, false]);
        let g = NDArray::from_bytes(&[0, 0, 0, 64], &[1], DType::Float32, Context::cpu(0))
            .expect("grad");
        p.deliver_grad(Some(Context::cpu(1)), &g).expect("deliver");
        assert_eq!(p.fresh_grads(), [false, true]);
        p.deliver_grad_bytes(Some(Context::cpu(0)), &[0, 0, 0, 64])
            .expect("deliver bytes");
        assert!(p.fresh_grad(Some(Context::cpu(0))).expect("flag"));
        p.set_fresh_grad(Some(Context::cpu(0)), false)
            .expect("clear");
        assert_eq!(p.fresh_grads(), [false, true]);
        assert!(p.fresh_grad(Some(Context::gpu(3))).is_err());
        assert_eq!(p.take_fresh_grads(), [false, true]);
        assert_eq!(p.fresh_grads(), [false, false]);
    }

    #[test]
    fn flags_survive_set_data_and_reset_with_new_buffers() {
        let mut p = two_copies();
        p.set_fresh_grad(Some(Context::cpu(0)), true).expect("set");
        let v = NDArray::from_bytes(&[0, 0, 64, 64], &[1], DType::Float32, Context::cpu(0))
            .expect("value");
        p.set_data(&v).expect("set_data");
        p.zero_grad().expect("zero");
        assert_eq!(
            p.fresh_grads(),
            [true, false],
            "set_data/zero_grad keep them"
        );
        p.set_grad_req(GradReq::Add).expect("add");
        assert_eq!(
            p.fresh_grads(),
            [false, false],
            "new gradient buffers start stale"
        );
        p.set_fresh_grad(Some(Context::cpu(1)), true).expect("set");
        p.cast(DType::Float64).expect("cast");
        assert_eq!(p.fresh_grads(), [false, false]);
        p.set_fresh_grad(Some(Context::cpu(1)), true).expect("set");
        p.reset_ctx(&[Context::cpu(1)]).expect("reset_ctx");
        assert_eq!(p.fresh_grads(), [false]);
        p.set_grad_req(GradReq::Null).expect("null");
        assert!(p.fresh_grads().is_empty());
        assert!(!p.fresh_grad(None).expect("readable"));
        assert!(matches!(
            p.set_fresh_grad(None, true),
            Err(Error::NoGradient(_))
        ));
    }
}
