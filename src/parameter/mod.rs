//! `Parameter`: one named weight with a copy per context, its gradient
//! buffers, the `grad_req` state machine, shape fill-in and deferred
//! initialisation, following MXNet 1.9.1's `gluon.Parameter`.
//!
//! Initialisers live above this layer: the core allocates, copies, casts,
//! reduces and checks; the binding fills a host array with an initializer and
//! hands it to [`Parameter::init_from_host`]. Nothing here calls back into a
//! caller while holding state, so a parameter behind a lock never calls out.

mod copy;
mod ctx_map;
mod deferred;
mod fresh;
mod grad_req;
mod grads;
mod load;

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

pub use copy::ParameterArrays;
pub use ctx_map::CtxMap;
pub use deferred::{DeferredInit, InitRequest};
pub use grad_req::GradReq;
pub use load::DTypeSource;

use crate::context::Context;
use crate::convert;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ndarray::{NDArray, SType};
use crate::reduce;

/// An opaque initialisation request kept while initialisation is deferred
/// (the Python binding keeps its initializer objects here).
pub type InitToken = Box<dyn Any + Send + Sync>;

/// Formats a shape as Python prints a tuple: `(64, 100)`, `(64,)`, `()`.
pub fn shape_str(shape: &[usize]) -> String {
    match shape {
        [d] => format!("({d},)"),
        _ => {
            let dims: Vec<String> = shape.iter().map(ToString::to_string).collect();
            format!("({})", dims.join(", "))
        }
    }
}

fn opt_shape_str(shape: Option<&[usize]>) -> String {
    shape.map_or_else(|| "None".to_string(), shape_str)
}

/// Formats contexts as Python prints a list: `[cpu(0), gpu(1)]`.
pub fn ctx_list_str(ctxs: &[Context]) -> String {
    let items: Vec<String> = ctxs.iter().map(ToString::to_string).collect();
    format!("[{}]", items.join(", "))
}

/// Whether every dimension is known (MXNet's legacy `shape_is_known`: a
/// missing shape, a 0 dim or a 0-d shape is unknown).
pub fn shape_is_known(shape: Option<&[usize]>) -> bool {
    matches!(shape, Some(s) if !s.is_empty() && s.iter().all(|&d| d > 0))
}

static VERSIONS: AtomicU64 = AtomicU64::new(1);

fn next_version() -> u64 {
    VERSIONS.fetch_add(1, Ordering::Relaxed)
}

/// A parameter: a named weight with one copy per context and optional gradients.
pub struct Parameter {
    name: String,
    shape: Option<Vec<usize>>,
    dtype: DType,
    /// Learning-rate multiplier.
    pub lr_mult: f64,
    /// Weight-decay multiplier.
    pub wd_mult: f64,
    differentiable: bool,
    allow_deferred_init: bool,
    stype: SType,
    grad_stype: SType,
    grad_req: GradReq,
    ctx: CtxMap,
    data: Option<Vec<NDArray>>,
    grad: Option<Vec<NDArray>>,
    deferred: Option<DeferredInit>,
    constant: Option<NDArray>,
    fresh: fresh::FreshFlags,
    version: u64,
}

impl fmt::Debug for Parameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Parameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Parameter {} (shape={}, dtype={})",
            self.name,
            opt_shape_str(self.shape.as_deref()),
            self.dtype
        )
    }
}

impl Parameter {
    /// A float32, `grad_req='write'` parameter with no shape yet.
    pub fn new(name: impl Into<String>) -> Parameter {
        Parameter {
            name: name.into(),
            shape: None,
            dtype: DType::Float32,
            lr_mult: 1.0,
            wd_mult: 1.0,
            differentiable: true,
            allow_deferred_init: false,
            stype: SType::Default,
            grad_stype: SType::Default,
            grad_req: GradReq::Write,
            ctx: CtxMap::default(),
            data: None,
            grad: None,
            deferred: None,
            constant: None,
            fresh: fresh::FreshFlags::default(),
            version: next_version(),
        }
    }

    /// A parameter with the given attributes (defaults for those not given:
    /// float32, `grad_req='write'`, differentiable, no deferral, dense storage,
    /// multipliers 1).
    pub fn from_attrs(name: impl Into<String>, attrs: &crate::param_dict::ParamAttrs) -> Parameter {
        let mut p = Parameter::new(name)
            .with_differentiable(attrs.differentiable.unwrap_or(true))
            .with_allow_deferred_init(attrs.allow_deferred_init.unwrap_or(false))
            .with_dtype(attrs.dtype.unwrap_or(DType::Float32))
            .with_stypes(
                attrs.stype.unwrap_or(SType::Default),
                attrs.grad_stype.unwrap_or(SType::Default),
            )
            .with_grad_req(attrs.grad_req.unwrap_or_default());
        if let Some(s) = &attrs.shape {
            p = p.with_shape(s);
        }
        p.lr_mult = attrs.lr_mult.unwrap_or(1.0);
        p.wd_mult = attrs.wd_mult.unwrap_or(1.0);
        p
    }

    /// Makes this parameter a constant holding `value` (Gluon's `Constant`,
    /// for bindings that build the parameter first).
    pub fn set_constant_value(&mut self, value: NDArray) {
        self.constant = Some(value);
    }

    /// Gluon's `Constant`: a non-differentiable parameter (`grad_req='null'`)
    /// whose initialisation always copies `value`.
    pub fn new_constant(name: impl Into<String>, value: NDArray) -> Parameter {
        let mut p = Parameter::new(name)
            .with_shape(value.shape())
            .with_dtype(value.dtype())
            .with_differentiable(false);
        p.constant = Some(value);
        p
    }

    /// The fixed value of a constant.
    pub fn constant_value(&self) -> Option<&NDArray> {
        self.constant.as_ref()
    }

    /// Builder: the shape (0 = unknown dim).
    pub fn with_shape(mut self, shape: &[usize]) -> Parameter {
        self.shape = Some(shape.to_vec());
        self
    }

    /// Builder: the dtype.
    pub fn with_dtype(mut self, dtype: DType) -> Parameter {
        self.dtype = dtype;
        self
    }

    /// Builder: the gradient request (pinned to `null` when not differentiable).
    pub fn with_grad_req(mut self, req: GradReq) -> Parameter {
        self.grad_req = if self.differentiable {
            req
        } else {
            GradReq::Null
        };
        self
    }

    /// Builder: whether initialisation may wait for the shape.
    pub fn with_allow_deferred_init(mut self, allow: bool) -> Parameter {
        self.allow_deferred_init = allow;
        self
    }

    /// Builder: whether the parameter takes gradients (false pins `grad_req='null'`).
    pub fn with_differentiable(mut self, differentiable: bool) -> Parameter {
        self.differentiable = differentiable;
        if !differentiable {
            self.grad_req = GradReq::Null;
        }
        self
    }

    /// Builder: storage types of data and gradient.
    pub fn with_stypes(mut self, stype: SType, grad_stype: SType) -> Parameter {
        self.stype = stype;
        self.grad_stype = grad_stype;
        self
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The shape, `None` if never given; 0 marks an unknown dim.
    pub fn shape(&self) -> Option<&[usize]> {
        self.shape.as_deref()
    }

    /// The dtype.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The gradient request.
    pub fn grad_req(&self) -> GradReq {
        self.grad_req
    }

    /// Whether the parameter takes gradients.
    pub fn differentiable(&self) -> bool {
        self.differentiable
    }

    /// Whether initialisation may be deferred until the shape is known.
    pub fn allow_deferred_init(&self) -> bool {
        self.allow_deferred_init
    }

    /// Storage type of the data.
    pub fn stype(&self) -> SType {
        self.stype
    }

    /// Storage type of the gradient.
    pub fn grad_stype(&self) -> SType {
        self.grad_stype
    }

    /// A number that changes whenever the data or gradient arrays are replaced
    /// (not when their contents change); bindings key caches on it.
    #[inline]
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Whether data exists (initialised, not deferred).
    pub fn is_initialized(&self) -> bool {
        self.data.is_some()
    }

    /// The deferred-initialisation record, if initialisation is deferred.
    pub fn deferred(&self) -> Option<&DeferredInit> {
        self.deferred.as_ref()
    }

    /// Sets the shape. Unknown (0) dims may be filled in; known dims and the
    /// number of dims may not change.
    pub fn set_shape(&mut self, new_shape: &[usize]) -> Result<()> {
        if let Some(old) = &self.shape {
            let compatible = old.len() == new_shape.len()
                && old.iter().zip(new_shape).all(|(&o, &n)| o == 0 || o == n);
            if !compatible {
                return Err(Error::ShapeMismatch(format!(
                    "Expected shape {} is incompatible with given shape {}.",
                    shape_str(new_shape),
                    shape_str(old)
                )));
            }
        }
        self.shape = Some(new_shape.to_vec());
        Ok(())
    }

    /// Replaces the shape without the compatibility check of [`Parameter::set_shape`]
    /// (used when merging attributes in `ParameterDict::get`).
    pub fn set_shape_unchecked(&mut self, shape: Vec<usize>) {
        self.shape = Some(shape);
    }

    pub(super) fn not_initialized(&self) -> Error {
        if self.deferred.is_some() {
            Error::DeferredInit(format!(
                "Parameter '{}' has not been initialized yet because initialization was \
                 deferred. Actual initialization happens during the first forward pass. \
                 Please pass one batch of data through the network before accessing \
                 Parameters. You can also avoid deferred initialization by specifying \
                 in_units, num_features, etc., for network layers.",
                self.name
            ))
        } else {
            Error::NotInitialized(format!(
                "Parameter '{}' has not been initialized. Call initialize() on it \
                 (or on its ParameterDict) first, or load its value from a file",
                self.name
            ))
        }
    }

    /// Index of the copy for `ctx` (`None`: the only copy, or the current context's).
    #[inline]
    pub(super) fn index_in(&self, len: usize, ctx: Option<Context>) -> Result<usize> {
        let ctx = match ctx {
            None if len == 1 => return Ok(0),
            None => Context::current(),
            Some(c) => c,
        };
        self.ctx.index(ctx).filter(|&i| i < len).ok_or_else(|| {
            Error::NotOnContext(format!(
                "Parameter '{}' was not initialized on context {ctx}. It was only \
                 initialized on {}.",
                self.name,
                ctx_list_str(self.ctx.contexts())
            ))
        })
    }

    pub(super) fn check_dense(&self, what: &str, ctx: Option<Context>) -> Result<()> {
        if self.stype == SType::Default {
            return Ok(());
        }
        let on = ctx.map_or_else(|| "None".to_string(), |c| c.to_string());
        Err(Error::NotInitialized(format!(
            "Cannot return a copy of Parameter '{}' on ctx {on} via {what}() because its \
             storage type is {}. Please use row_sparse_data() instead.",
            self.name, self.stype
        )))
    }

    /// Index of the data copy for `ctx`, with MXNet's errors. Bindings use it
    /// to find a cached view without cloning the array.
    #[inline]
    pub fn data_index(&self, ctx: Option<Context>) -> Result<usize> {
        self.check_dense("data", ctx)?;
        match &self.data {
            Some(d) => self.index_in(d.len(), ctx),
            None => Err(self.not_initialized()),
        }
    }

    /// The data copy on `ctx` (`None`: the only copy, or the current context's).
    pub fn data(&self, ctx: Option<Context>) -> Result<NDArray> {
        let i = self.data_index(ctx)?;
        Ok(self.data.as_deref().unwrap_or_default()[i].clone())
    }

    /// All data copies, in context order.
    pub fn list_data(&self) -> Result<&[NDArray]> {
        self.check_dense("list_data", None)?;
        self.data.as_deref().ok_or_else(|| self.not_initialized())
    }

    /// The contexts, in initialisation order (the deferred ones while deferred).
    pub fn list_ctx(&self) -> Result<Vec<Context>> {
        if self.data.is_some() {
            return Ok(self.ctx.contexts().to_vec());
        }
        match &self.deferred {
            Some(d) => Ok(d.ctx.clone()),
            None => Err(Error::NotInitialized(format!(
                "Parameter '{}' has not been initialized",
                self.name
            ))),
        }
    }

    /// Initialises from `data`: one copy per context in `ctxs` (converted to
    /// the parameter's dtype), zeroed gradients unless `grad_req` is `null`.
    /// The shape's unknown dims are filled from `data`.
    pub fn init_from_host(&mut self, data: &NDArray, ctxs: &[Context]) -> Result<()> {
        self.init_from(data, ctxs, false)
    }

    /// [`Parameter::init_from_host`]; with `adopt`, `data` is a fresh array
    /// nobody else will use (a checkpoint staged on a GPU), so the copy for
    /// its own context reuses its buffer instead of copying it.
    pub(crate) fn init_from(
        &mut self,
        data: &NDArray,
        ctxs: &[Context],
        adopt: bool,
    ) -> Result<()> {
        if ctxs.is_empty() {
            return Err(Error::invalid(format!(
                "Cannot initialize Parameter '{}' on an empty list of contexts",
                self.name
            )));
        }
        self.fill_shape_from(data.shape(), false)?;
        let mut adopt = adopt && data.dtype() == self.dtype && data.sparse_parts().is_none();
        let src = if data.dtype() == self.dtype {
            data.clone()
        } else {
            convert::cast(data, self.dtype)?
        };
        let src = crate::sparse::as_stype(&src, self.stype)?;
        // One host-to-device copy; further GPUs copy from the first device copy.
        let mut copies: Vec<NDArray> = Vec::with_capacity(ctxs.len());
        let mut on_device: Option<usize> = None;
        for &c in ctxs {
            let from = match on_device {
                Some(i) if !c.is_host() => &copies[i],
                _ => &src,
            };
            let copy = if adopt && c == src.context() {
                adopt = false;
                src.clone()
            } else {
                from.copy_to(c)?
            };
            if !c.is_host() && on_device.is_none() {
                on_device = Some(copies.len());
            }
            copies.push(copy);
        }
        self.ctx = CtxMap::new(ctxs);
        self.data = Some(copies);
        self.deferred = None;
        self.init_grad()
    }

    /// [`Parameter::init_from_host`] for a freshly filled host array that
    /// nothing else holds: its buffer becomes the copy on the first host
    /// context instead of being copied there (one copy fewer per parameter).
    pub fn init_from_owned(&mut self, data: NDArray, ctxs: &[Context]) -> Result<()> {
        let host = ctxs.iter().copied().enumerate().find(|(_, c)| c.is_host());
        let movable = data.dtype() == self.dtype
            && data.stype() == SType::Default
            && self.stype == SType::Default
            && data.context().is_host();
        let Some((host, host_ctx)) = host.filter(|_| movable) else {
            return self.init_from_host(&data, ctxs);
        };
        self.fill_shape_from(data.shape(), false)?;
        let mut copies = Vec::with_capacity(ctxs.len());
        for (i, &c) in ctxs.iter().enumerate() {
            if i != host {
                copies.push(data.copy_to(c)?);
            }
        }
        copies.insert(host, data.with_context(host_ctx));
        self.ctx = CtxMap::new(ctxs);
        self.data = Some(copies);
        self.deferred = None;
        self.init_grad()
    }

    pub(super) fn fill_shape_from(&mut self, given: &[usize], loading: bool) -> Result<()> {
        if self.shape.as_deref() == Some(given) {
            return Ok(());
        }
        if let Some(old) = &self.shape {
            let ok =
                old.len() == given.len() && old.iter().zip(given).all(|(&o, &g)| o == 0 || o == g);
            if !ok {
                return Err(Error::ShapeMismatch(if loading {
                    format!(
                        "Failed loading Parameter '{}' from saved params: shape incompatible \
                         expected {} vs saved {}",
                        self.name,
                        shape_str(old),
                        shape_str(given)
                    )
                } else {
                    format!(
                        "Expected shape {} is incompatible with given shape {}.",
                        shape_str(given),
                        shape_str(old)
                    )
                }));
            }
        }
        self.shape = Some(given.to_vec());
        Ok(())
    }

    /// Sets the value on every context (converting the dtype). Before
    /// initialisation this only works while deferred: the value is kept and
    /// used when initialisation finishes.
    pub fn set_data(&mut self, data: &NDArray) -> Result<()> {
        self.set_shape(data.shape())?;
        match &self.data {
            Some(arrays) => {
                for a in arrays {
                    convert::assign_cast(a, data)?;
                }
                Ok(())
            }
            None => match &mut self.deferred {
                Some(d) => {
                    d.data = Some(data.copy_to(Context::cpu(0))?);
                    Ok(())
                }
                None => Err(Error::NotInitialized(format!(
                    "Parameter '{}' has not been initialized",
                    self.name
                ))),
            },
        }
    }

    /// The mean of the copies as one array on `cpu(0)` (Gluon's `_reduce`).
    pub fn reduce(&self) -> Result<NDArray> {
        let data = self.data.as_deref().ok_or_else(|| self.not_initialized())?;
        let refs: Vec<&NDArray> = data.iter().collect();
        let mean = reduce::average(&refs, Context::cpu(0))?;
        crate::sparse::as_stype(&mean, self.stype)
    }

    /// The rows `rows` of the copy on `ctx` (`None`: the only copy, or the
    /// current context's) as a row_sparse array on `out_ctx` (default: that
    /// copy's context). MXNet pulls them from the Trainer's kvstore; here they
    /// come from the local copy. Only row_sparse parameters have this.
    pub fn row_sparse_data(
        &self,
        ctx: Option<Context>,
        rows: &[i64],
        out_ctx: Option<Context>,
    ) -> Result<NDArray> {
        if self.stype != SType::RowSparse {
            return Err(Error::NotInitialized(format!(
                "Cannot return a copy of Parameter {} via row_sparse_data() because its \
                 storage type is {}. Please use data() instead.",
                self.name, self.stype
            )));
        }
        let data = self.data.as_deref().ok_or_else(|| self.not_initialized())?;
        let copy = &data[self.index_in(data.len(), ctx)?];
        crate::sparse::retain_rows(copy, rows, out_ctx.unwrap_or(copy.context()))
    }

    /// [`Parameter::row_sparse_data`] for every context, in context order.
    pub fn list_row_sparse_data(&self, rows: &[i64]) -> Result<Vec<NDArray>> {
        let ctxs = self.ctx.contexts().to_vec();
        if self.data.is_none() {
            return self.row_sparse_data(None, rows, None).map(|a| vec![a]);
        }
        ctxs.into_iter()
            .map(|c| self.row_sparse_data(Some(c), rows, None))
            .collect()
    }

    /// Moves the parameter to `ctxs`, keeping its value (the mean of the copies).
    /// While deferred, only the recorded contexts change.
    pub fn reset_ctx(&mut self, ctxs: &[Context]) -> Result<()> {
        if self.data.is_some() {
            let value = self.reduce()?;
            return self.init_from_host(&value, ctxs);
        }
        match &mut self.deferred {
            Some(d) => {
                d.ctx = ctxs.to_vec();
                Ok(())
            }
            None => Err(Error::NotInitialized(format!(
                "Cannot reset context for Parameter '{}' because it has not been initialized.",
                self.name
            ))),
        }
    }

    /// The value [`Parameter::reset_ctx`] moves: the only copy itself when
    /// there is one dense copy, else the mean on `cpu(0)`. `None` while deferred.
    pub(crate) fn value_to_move(&self) -> Result<Option<NDArray>> {
        match self.data.as_deref() {
            None => Ok(None),
            Some([only]) if only.sparse_parts().is_none() => Ok(Some(only.clone())),
            Some(_) => self.reduce().map(Some),
        }
    }

    /// Takes `copies` (one per context of `ctxs`, in order, with the
    /// parameter's shape and dtype) as its data, with fresh zeroed gradients:
    /// the end of a batched placement (`ParameterDict` reset_ctx or initialize).
    pub(crate) fn adopt_copies(&mut self, ctxs: &[Context], copies: Vec<NDArray>) -> Result<()> {
        if copies.len() != ctxs.len() {
            return Err(Error::invalid(format!(
                "Parameter '{}': {} copies for {} contexts",
                self.name,
                copies.len(),
                ctxs.len()
            )));
        }
        self.ctx = CtxMap::new(ctxs);
        self.data = Some(copies);
        self.deferred = None;
        self.init_grad()
    }

    /// Changes the dtype, converting data and gradients.
    pub fn cast(&mut self, dtype: DType) -> Result<()> {
        if dtype == self.dtype {
            return Ok(());
        }
        let cast_all = |arrays: &Option<Vec<NDArray>>| -> Result<Option<Vec<NDArray>>> {
            arrays
                .as_ref()
                .map(|v| v.iter().map(|a| crate::sparse::cast(a, dtype)).collect())
                .transpose()
        };
        let data = cast_all(&self.data)?;
        let grad = cast_all(&self.grad)?;
        self.dtype = dtype;
        if self.data.is_some() {
            self.data = data;
            // MXNet marks the cast copies as variables again: stale.
            self.set_grad_buffers(grad);
            self.version = next_version();
        }
        Ok(())
    }
}

#[cfg(test)]
mod adopt_tests {
    use super::*;

    #[test]
    fn adoption_reuses_the_buffer_only_for_its_own_context() {
        let a = NDArray::from_bytes(&[0, 0, 128, 63], &[1], DType::Float32, Context::cpu(0))
            .expect("array");
        let ctxs = [Context::cpu(0), Context::cpu(1)];
        let mut p = Parameter::new("w").with_shape(&[1]);
        p.init_from(&a, &ctxs, true).expect("init");
        let d = p.list_data().expect("data");
        assert!(d[0].buffer().same_storage(a.buffer()));
        assert!(!d[1].buffer().same_storage(a.buffer()));
        let mut q = Parameter::new("w").with_shape(&[1]);
        q.init_from_host(&a, &ctxs).expect("init");
        assert!(!q
            .data(Some(Context::cpu(0)))
            .expect("data")
            .buffer()
            .same_storage(a.buffer()));
        let mut r = Parameter::new("w")
            .with_shape(&[1])
            .with_dtype(DType::Float64);
        r.init_from(&a, &ctxs, true).expect("init");
        assert!(!r
            .data(Some(Context::cpu(0)))
            .expect("data")
            .buffer()
            .same_storage(a.buffer()));
    }
}
