//! `DType`: the one table mapping MXNet's type flags to numpy names and item
//! sizes. Flags 8-11 only exist in MXNet 2.0 but are read for forward
//! compatibility.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// An element type, with MXNet's type flag as discriminant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum DType {
    /// IEEE binary32.
    Float32 = 0,
    /// IEEE binary64.
    Float64 = 1,
    /// IEEE binary16.
    Float16 = 2,
    /// Unsigned 8-bit.
    UInt8 = 3,
    /// Signed 32-bit (note: flag 4 is int32, 5 is int8).
    Int32 = 4,
    /// Signed 8-bit.
    Int8 = 5,
    /// Signed 64-bit.
    Int64 = 6,
    /// Boolean stored as one byte, 0 or 1.
    Bool = 7,
    /// Signed 16-bit (MXNet 2.0).
    Int16 = 8,
    /// Unsigned 16-bit (MXNet 2.0).
    UInt16 = 9,
    /// Unsigned 32-bit (MXNet 2.0).
    UInt32 = 10,
    /// Unsigned 64-bit (MXNet 2.0).
    UInt64 = 11,
    /// bfloat16: the upper half of a float32.
    BFloat16 = 12,
}

/// Every dtype, in flag order.
pub const ALL_DTYPES: [DType; 13] = [
    DType::Float32,
    DType::Float64,
    DType::Float16,
    DType::UInt8,
    DType::Int32,
    DType::Int8,
    DType::Int64,
    DType::Bool,
    DType::Int16,
    DType::UInt16,
    DType::UInt32,
    DType::UInt64,
    DType::BFloat16,
];

impl DType {
    /// The dtype for an MXNet type flag, if the flag is known.
    pub fn from_flag(flag: i32) -> Option<DType> {
        usize::try_from(flag)
            .ok()
            .and_then(|i| ALL_DTYPES.get(i).copied())
    }

    /// MXNet's type flag.
    pub fn flag(self) -> i32 {
        self as i32
    }

    /// Bytes per element.
    pub fn itemsize(self) -> usize {
        match self {
            DType::UInt8 | DType::Int8 | DType::Bool => 1,
            DType::Float16 | DType::BFloat16 | DType::Int16 | DType::UInt16 => 2,
            DType::Float32 | DType::Int32 | DType::UInt32 => 4,
            DType::Float64 | DType::Int64 | DType::UInt64 => 8,
        }
    }

    /// The numpy name (`bfloat16` is `ml_dtypes.bfloat16`).
    pub fn name(self) -> &'static str {
        match self {
            DType::Float32 => "float32",
            DType::Float64 => "float64",
            DType::Float16 => "float16",
            DType::UInt8 => "uint8",
            DType::Int32 => "int32",
            DType::Int8 => "int8",
            DType::Int64 => "int64",
            DType::Bool => "bool",
            DType::Int16 => "int16",
            DType::UInt16 => "uint16",
            DType::UInt32 => "uint32",
            DType::UInt64 => "uint64",
            DType::BFloat16 => "bfloat16",
        }
    }

    /// Whether the type is a floating-point type.
    pub fn is_float(self) -> bool {
        matches!(
            self,
            DType::Float32 | DType::Float64 | DType::Float16 | DType::BFloat16
        )
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.strip_prefix("numpy.").unwrap_or(s);
        ALL_DTYPES
            .iter()
            .copied()
            .find(|d| d.name() == s)
            .or(match s {
                "bool_" | "?" => Some(DType::Bool),
                "float" | "double" | "f8" | "<f8" => Some(DType::Float64),
                "f4" | "<f4" => Some(DType::Float32),
                "f2" | "<f2" | "half" => Some(DType::Float16),
                "int" | "i8" | "<i8" => Some(DType::Int64),
                "i4" | "<i4" => Some(DType::Int32),
                "i1" | "|i1" => Some(DType::Int8),
                "u1" | "|u1" => Some(DType::UInt8),
                _ => None,
            })
            .ok_or_else(|| Error::invalid(format!("unsupported dtype '{s}'")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip() {
        for d in ALL_DTYPES {
            assert_eq!(DType::from_flag(d.flag()), Some(d));
            assert_eq!(d.name().parse::<DType>().ok(), Some(d));
        }
        assert_eq!(DType::from_flag(-1), None);
        assert_eq!(DType::from_flag(13), None);
        assert_eq!(DType::Int32.flag(), 4);
        assert_eq!(DType::Int8.flag(), 5);
    }
}
