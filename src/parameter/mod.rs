//! `Parameter`: one named weight with a copy per context, its gradient
//! buffers, the `grad_req` state machine, shape fill-in and deferred
//! initialisation, following MXNet 1.9.1's `gluon.Parameter`.
//!
//! Initialisers live above this layer: the core allocates, copies, casts,
//! reduces and checks; the binding fills a host array with an initializer and
//! hands it to [`Parameter::init_from_host`]. Nothing here calls back into a
//! caller while holding state, so a parameter behind a lock never calls out.

mod ctx_map;
mod grad_req;

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

pub use ctx_map::CtxMap;
pub use grad_req::GradReq;

use crate::context::Context;
use crate::convert;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::ndarray::{NDArray, SType};
use crate::reduce;

/// An opaque initialisation request kept while initialisation is deferred
/// (the Python binding keeps its initializer objects here).
pub type InitToken = Box<dyn Any + Send + Sync>;

/// What `initialize` recorded and what finishing it needs.
pub struct DeferredInit {
    /// Contexts to initialise on.
    pub ctx: Vec<Context>,
    /// Data given by `set_data` while deferred; used instead of an initializer.
    pub data: Option<NDArray>,
    /// The binding's initializer request.
    pub token: Option<InitToken>,
}

impl fmt::Debug for DeferredInit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeferredInit")
            .field("ctx", &self.ctx)
            .field("data", &self.data)
            .field("token", &self.token.is_some())
            .finish()
    }
}

/// Where `ParameterDict::load` takes the dtype from when file and parameter differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DTypeSource {
    /// Cast the saved values to the parameter's dtype.
    #[default]
    Current,
    /// Cast the parameter to the saved dtype.
    Saved,
}

impl std::str::FromStr for DTypeSource {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "current" => Ok(DTypeSource::Current),
            "saved" => Ok(DTypeSource::Saved),
            _ => Err(Error::invalid(format!(
                "dtype_source must be one of 'current' or 'saved', but got '{s}'"
            ))),
        }
    }
}

/// Outcome of [`Parameter::request_init`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitRequest {
    /// Already initialised and `force_reinit` was false: nothing changed.
    AlreadyInitialized,
    /// The shape is not fully known: the request was recorded (deferred).
    Deferred,
    /// The shape is known: finish with [`Parameter::take_deferred`] + [`Parameter::init_from_host`].
    Ready,
}

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
            version: next_version(),
        }
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

    /// Replaces the shape without checks (`ParameterDict::get` merging).
    pub(crate) fn set_shape_unchecked(&mut self, shape: Vec<usize>) {
        self.shape = Some(shape);
    }

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
            if self.grad.take().is_some() {
                self.version = next_version();
            }
        } else if self.data.is_some() {
            self.init_grad()?;
        }
        Ok(())
    }

    fn init_grad(&mut self) -> Result<()> {
        self.version = next_version();
        if self.grad_req == GradReq::Null {
            self.grad = None;
            return Ok(());
        }
        let data = self.data.as_deref().unwrap_or_default();
        let grads = data
            .iter()
            .map(|d| NDArray::zeros(d.shape(), d.dtype(), d.context()))
            .collect::<Result<Vec<_>>>()?;
        self.grad = Some(grads);
        Ok(())
    }

    fn not_initialized(&self) -> Error {
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
                "Parameter '{}' has not been initialized. Note that you should initialize \
                 parameters and create Trainer with Block.collect_params() instead of \
                 Block.params because the later does not include Parameters of nested \
                 child Blocks",
                self.name
            ))
        }
    }

    /// Index of the copy for `ctx` (`None`: the only copy, or the current context's).
    #[inline]
    fn index_in(&self, len: usize, ctx: Option<Context>) -> Result<usize> {
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

    fn check_dense(&self, what: &str, ctx: Option<Context>) -> Result<()> {
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

    /// Index of the gradient for `ctx`, with MXNet's errors.
    #[inline]
    pub fn grad_index(&self, ctx: Option<Context>) -> Result<usize> {
        match (&self.data, &self.grad) {
            (Some(_), None) => Err(self.no_grad()),
            (_, Some(g)) => self.index_in(g.len(), ctx),
            (None, None) => Err(self.not_initialized()),
        }
    }

    fn no_grad(&self) -> Error {
        Error::NoGradient(format!(
            "Cannot get gradient array for Parameter '{}' because grad_req='null'",
            self.name
        ))
    }

    /// The data copy on `ctx` (`None`: the only copy, or the current context's).
    pub fn data(&self, ctx: Option<Context>) -> Result<NDArray> {
        let i = self.data_index(ctx)?;
        Ok(self.data.as_deref().unwrap_or_default()[i].clone())
    }

    /// The gradient on `ctx`.
    pub fn grad(&self, ctx: Option<Context>) -> Result<NDArray> {
        let i = self.grad_index(ctx)?;
        Ok(self.grad.as_deref().unwrap_or_default()[i].clone())
    }

    /// All data copies, in context order.
    pub fn list_data(&self) -> Result<&[NDArray]> {
        self.check_dense("list_data", None)?;
        self.data.as_deref().ok_or_else(|| self.not_initialized())
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

    /// Starts initialisation on `ctxs` (Gluon's `initialize` minus the
    /// initializer call). Clears data and gradients unless already initialised
    /// and not `force_reinit`. With an unknown shape the request is recorded if
    /// deferral is allowed, else `InvalidArgument`.
    pub fn request_init(
        &mut self,
        ctxs: &[Context],
        token: Option<InitToken>,
        force_reinit: bool,
    ) -> Result<InitRequest> {
        if self.data.is_some() && !force_reinit {
            return Ok(InitRequest::AlreadyInitialized);
        }
        if ctxs.is_empty() {
            return Err(Error::invalid(format!(
                "Cannot initialize Parameter '{}' on an empty list of contexts",
                self.name
            )));
        }
        let known = shape_is_known(self.shape.as_deref());
        if !known && !self.allow_deferred_init {
            return Err(Error::invalid(format!(
                "Cannot initialize Parameter '{}' because it has invalid shape: {}.",
                self.name,
                opt_shape_str(self.shape.as_deref())
            )));
        }
        if self.data.take().is_some() {
            self.version = next_version();
        }
        self.grad = None;
        self.deferred = Some(DeferredInit {
            ctx: ctxs.to_vec(),
            data: None,
            token,
        });
        Ok(if known {
            InitRequest::Ready
        } else {
            InitRequest::Deferred
        })
    }

    /// Takes the deferred record to finish initialisation: `Ok(None)` when
    /// nothing is deferred, `InvalidArgument` while the shape is still unknown
    /// (the record stays). Give it back with [`Parameter::restore_deferred`] if
    /// filling fails.
    pub fn take_deferred(&mut self) -> Result<Option<DeferredInit>> {
        if self.deferred.is_none() {
            return Ok(None);
        }
        if !shape_is_known(self.shape.as_deref()) {
            return Err(Error::invalid(format!(
                "Cannot initialize Parameter '{}' because it has invalid shape: {}. Please \
                 specify in_units, in_channels, etc for `Block`s.",
                self.name,
                opt_shape_str(self.shape.as_deref())
            )));
        }
        Ok(self.deferred.take())
    }

    /// Puts back a record taken by [`Parameter::take_deferred`].
    pub fn restore_deferred(&mut self, record: DeferredInit) {
        if self.data.is_none() {
            self.deferred = Some(record);
        }
    }

    /// Finishes deferred initialisation in Rust: the data given by `set_data`
    /// while deferred, or else `fill` on a zeroed host array (which gets the
    /// token). A no-op when nothing is deferred.
    pub fn finish_deferred_init_with(
        &mut self,
        fill: impl FnOnce(&NDArray, Option<&InitToken>) -> Result<()>,
    ) -> Result<()> {
        let Some(record) = self.take_deferred()? else {
            return Ok(());
        };
        let data = match record.data.as_ref().or(self.constant.as_ref()) {
            Some(d) => d.clone(),
            None => {
                let arr = self.zeros_host()?;
                if let Err(e) = fill(&arr, record.token.as_ref()) {
                    self.restore_deferred(record);
                    return Err(e);
                }
                arr
            }
        };
        self.init_from_host(&data, &record.ctx)
    }

    /// Finishes deferred initialisation with zeros (or the data set while deferred).
    pub fn finish_deferred_init(&mut self) -> Result<()> {
        self.finish_deferred_init_with(|_, _| Ok(()))
    }

    /// A zeroed host array of the parameter's (known) shape and dtype.
    pub fn zeros_host(&self) -> Result<NDArray> {
        match self.shape.as_deref() {
            Some(s) if shape_is_known(Some(s)) => NDArray::zeros(s, self.dtype, Context::cpu(0)),
            other => Err(Error::invalid(format!(
                "Cannot initialize Parameter '{}' because it has invalid shape: {}.",
                self.name,
                opt_shape_str(other)
            ))),
        }
    }

    /// Initialises from `data`: one copy per context in `ctxs` (converted to
    /// the parameter's dtype), zeroed gradients unless `grad_req` is `null`.
    /// The shape's unknown dims are filled from `data`.
    pub fn init_from_host(&mut self, data: &NDArray, ctxs: &[Context]) -> Result<()> {
        if ctxs.is_empty() {
            return Err(Error::invalid(format!(
                "Cannot initialize Parameter '{}' on an empty list of contexts",
                self.name
            )));
        }
        self.fill_shape_from(data.shape(), false)?;
        let src = if data.dtype() == self.dtype {
            data.clone()
        } else {
            convert::cast(data, self.dtype)?
        };
        let copies = ctxs
            .iter()
            .map(|&c| src.copy_to(c))
            .collect::<Result<Vec<_>>>()?;
        self.ctx = CtxMap::new(ctxs);
        self.data = Some(copies);
        self.deferred = None;
        self.init_grad()
    }

    fn fill_shape_from(&mut self, given: &[usize], loading: bool) -> Result<()> {
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
        reduce::average(&refs, Context::cpu(0))
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

    /// Zeroes every gradient buffer (a no-op without gradients).
    pub fn zero_grad(&self) -> Result<()> {
        for g in self.grad.as_deref().unwrap_or_default() {
            g.buffer().write()?.fill(0);
        }
        Ok(())
    }

    /// Changes the dtype, converting data and gradients.
    pub fn cast(&mut self, dtype: DType) -> Result<()> {
        if dtype == self.dtype {
            return Ok(());
        }
        let cast_all = |arrays: &Option<Vec<NDArray>>| -> Result<Option<Vec<NDArray>>> {
            arrays
                .as_ref()
                .map(|v| v.iter().map(|a| convert::cast(a, dtype)).collect())
                .transpose()
        };
        let data = cast_all(&self.data)?;
        let grad = cast_all(&self.grad)?;
        self.dtype = dtype;
        if self.data.is_some() {
            self.data = data;
            self.grad = grad;
            self.version = next_version();
        }
        Ok(())
    }

    /// Delivers a gradient computed for the copy on `ctx`: `write` overwrites,
    /// `add` accumulates, `null` refuses with `NoGradient`. The source may be of
    /// another dtype (it is converted).
    pub fn deliver_grad(&self, ctx: Option<Context>, src: &NDArray) -> Result<()> {
        let dst = self.grad_for_delivery(ctx)?;
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
        let dst = self.grad_for_delivery(ctx)?;
        if bytes.len() != dst.nbytes() {
            return Err(Error::ShapeMismatch(format!(
                "gradient of {} bytes delivered to Parameter '{}' of {} bytes",
                bytes.len(),
                self.name,
                dst.nbytes()
            )));
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

    fn grad_for_delivery(&self, ctx: Option<Context>) -> Result<&NDArray> {
        if self.grad_req == GradReq::Null {
            return Err(self.no_grad());
        }
        let i = self.grad_index(ctx)?;
        self.grad
            .as_deref()
            .and_then(|g| g.get(i))
            .ok_or_else(|| self.no_grad())
    }

    /// Gluon's `_load_init`: (re)initialises from a loaded array. Unknown dims
    /// come from `data`; the dtype must match unless `cast_dtype`. Initialised
    /// parameters get the values copied into their existing buffers (`ctx`, if
    /// given, must be the same set of contexts); deferred ones finish on their
    /// recorded contexts; others initialise on `ctx` (default `cpu(0)`).
    pub fn load_init(
        &mut self,
        data: &NDArray,
        ctx: Option<&[Context]>,
        cast_dtype: bool,
        dtype_source: DTypeSource,
    ) -> Result<()> {
        self.fill_shape_from(data.shape(), true)?;
        if data.dtype() != self.dtype {
            if !cast_dtype {
                return Err(Error::DTypeMismatch(format!(
                    "Failed loading Parameter '{}' from saved params: dtype incompatible \
                     expected {} vs saved {}. Set cast_dtype=True to cast the dtype of saved \
                     params.",
                    self.name,
                    self.dtype,
                    data.dtype()
                )));
            }
            if dtype_source == DTypeSource::Saved {
                self.cast(data.dtype())?;
            }
        }
        let same_set = |a: &[Context], b: &[Context]| {
            a.iter().all(|c| b.contains(c)) && b.iter().all(|c| a.contains(c))
        };
        if self.data.is_none() {
            let ctxs: Vec<Context> = match (self.deferred.as_ref(), ctx) {
                (Some(d), Some(c)) if !same_set(c, &d.ctx) => {
                    return Err(self.load_ctx_error(c, &d.ctx));
                }
                (Some(d), _) => d.ctx.clone(),
                (None, Some(c)) => c.to_vec(),
                (None, None) => vec![Context::cpu(0)],
            };
            return self.init_from_host(data, &ctxs);
        }
        if let Some(c) = ctx {
            if !same_set(c, self.ctx.contexts()) {
                return Err(self.load_ctx_error(c, self.ctx.contexts()));
            }
        }
        for a in self.data.as_deref().unwrap_or_default() {
            convert::assign_cast(a, data)?;
        }
        self.deferred = None;
        Ok(())
    }

    fn load_ctx_error(&self, asked: &[Context], had: &[Context]) -> Error {
        Error::invalid(format!(
            "Failed to load Parameter '{}' on {} because it was previous initialized on {}.",
            self.name,
            ctx_list_str(asked),
            ctx_list_str(had)
        ))
    }
}
