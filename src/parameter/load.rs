//! Gluon's `_load_init`: (re)initialising a parameter from a loaded array,
//! with MXNet's shape, dtype and context checks.

use super::{ctx_list_str, Parameter};
use crate::context::Context;
use crate::convert;
use crate::error::{Error, Result};
use crate::ndarray::NDArray;

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

impl Parameter {
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
        self.load_init_from(data, ctx, cast_dtype, dtype_source, false)
    }

    /// [`Parameter::load_init`]; `adopt` as in [`Parameter::init_from`].
    pub(crate) fn load_init_from(
        &mut self,
        data: &NDArray,
        ctx: Option<&[Context]>,
        cast_dtype: bool,
        dtype_source: DTypeSource,
        adopt: bool,
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
            return self.init_from(data, &ctxs, adopt);
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

    pub(super) fn load_ctx_error(&self, asked: &[Context], had: &[Context]) -> Error {
        Error::invalid(format!(
            "Failed to load Parameter '{}' on {} because it was previous initialized on {}.",
            self.name,
            ctx_list_str(asked),
            ctx_list_str(had)
        ))
    }
}
