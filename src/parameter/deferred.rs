//! Initialisation requests and deferred initialisation: what `initialize`
//! records when the shape is not yet known, and how it is completed.

use std::fmt;

use super::{next_version, opt_shape_str, shape_is_known, InitToken, Parameter};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::ndarray::NDArray;

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

impl Parameter {
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
        self.set_grad_buffers(None);
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
}
