//! A reader of the object's BTF: every type with its name, members, enumerators and size.
//!
//! aya-obj parses BTF for the loader but keeps walking its types to itself (0.3), so this
//! reads the encoding it writes back (`Btf::to_bytes`), as the kernel documents it
//! (Documentation/bpf/btf.rst). Only what the object check needs, but every kind is
//! decoded, so an unexpected one is an error rather than a misread.

use std::fmt;

/// A BTF type id; 0 is `void`.
pub type TypeId = u32;

#[derive(Debug)]
pub struct Type {
    pub name: String,
    pub kind: Kind,
}

#[derive(Debug)]
pub enum Kind {
    Void,
    Int {
        size: u32,
    },
    Float {
        size: u32,
    },
    Ptr {
        target: TypeId,
    },
    Array {
        element: TypeId,
        len: u32,
    },
    Struct {
        size: u32,
        members: Vec<Member>,
    },
    /// Its members are read past, not kept: no map value holds a union.
    Union {
        size: u32,
    },
    /// `ENUM` and `ENUM64`; values as the C compiler gave them, sign included.
    Enum {
        size: u32,
        values: Vec<(String, i128)>,
    },
    Fwd,
    /// `typedef`, `const`, `volatile`, `restrict` and type tags: the same type, renamed
    /// or qualified.
    Alias {
        target: TypeId,
    },
    Func,
    FuncProto,
    Var {
        target: TypeId,
    },
    DataSec {
        vars: Vec<TypeId>,
    },
    DeclTag,
}

#[derive(Debug)]
pub struct Member {
    pub name: String,
    pub ty: TypeId,
    pub bit_offset: u32,
    /// Non-zero for a bitfield.
    pub bits: u32,
}

#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BTF: {}", self.0)
    }
}

fn error(message: impl Into<String>) -> Error {
    Error(message.into())
}

/// Little-endian words from a byte slice, each read checked against its end.
struct Words<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Words<'_> {
    fn u32(&mut self) -> Result<u32, Error> {
        let word = self
            .bytes
            .get(self.at..self.at + 4)
            .ok_or_else(|| error(format!("type section ends inside a word at {}", self.at)))?;
        self.at += 4;
        Ok(u32::from_le_bytes([word[0], word[1], word[2], word[3]]))
    }
}

pub struct Btf {
    types: Vec<Type>,
}

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// Types chained through aliases deeper than this are taken for a loop.
const MAX_DEPTH: usize = 32;

impl Btf {
    /// Parses little-endian BTF: header, type section, string section.
    pub fn parse(data: &[u8]) -> Result<Btf, Error> {
        let mut header = Words { bytes: data, at: 0 };
        let magic = header.u32()?;
        if magic & 0xffff != 0xeb9f {
            return Err(error(format!("bad magic {:#x}", magic & 0xffff)));
        }
        let hdr_len = header.u32()? as usize;
        let type_off = header.u32()? as usize;
        let type_len = header.u32()? as usize;
        let str_off = header.u32()? as usize;
        let str_len = header.u32()? as usize;
        let section = |off: usize, len: usize, what: &str| {
            data.get(hdr_len + off..hdr_len + off + len)
                .ok_or_else(|| error(format!("{what} section out of bounds")))
        };
        let type_bytes = section(type_off, type_len, "type")?;
        let strings = section(str_off, str_len, "string")?;
        let name = |offset: u32| -> Result<String, Error> {
            let rest = strings
                .get(offset as usize..)
                .ok_or_else(|| error(format!("name offset {offset} out of bounds")))?;
            let end = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or_else(|| error(format!("name at {offset} is not terminated")))?;
            Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
        };

        let mut types = vec![Type {
            name: String::new(),
            kind: Kind::Void,
        }];
        let mut words = Words {
            bytes: type_bytes,
            at: 0,
        };
        while words.at < type_bytes.len() {
            let name_off = words.u32()?;
            let info = words.u32()?;
            let size_or_type = words.u32()?;
            let vlen = info & 0xffff;
            let kind_code = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let members = |words: &mut Words| -> Result<Vec<Member>, Error> {
                (0..vlen)
                    .map(|_| {
                        let member_name = name(words.u32()?)?;
                        let ty = words.u32()?;
                        let offset = words.u32()?;
                        let (bit_offset, bits) = if kind_flag {
                            (offset & 0xff_ffff, offset >> 24)
                        } else {
                            (offset, 0)
                        };
                        Ok(Member {
                            name: member_name,
                            ty,
                            bit_offset,
                            bits,
                        })
                    })
                    .collect()
            };
            let kind = match kind_code {
                KIND_INT => {
                    words.u32()?;
                    Kind::Int { size: size_or_type }
                }
                KIND_PTR => Kind::Ptr {
                    target: size_or_type,
                },
                KIND_ARRAY => {
                    let element = words.u32()?;
                    words.u32()?; // index type
                    let len = words.u32()?;
                    Kind::Array { element, len }
                }
                KIND_STRUCT => Kind::Struct {
                    size: size_or_type,
                    members: members(&mut words)?,
                },
                KIND_UNION => {
                    members(&mut words)?;
                    Kind::Union { size: size_or_type }
                }
                KIND_ENUM | KIND_ENUM64 => {
                    let values = (0..vlen)
                        .map(|_| {
                            let enumerator = name(words.u32()?)?;
                            let low = words.u32()?;
                            // the sign flag says how to widen the value's last word
                            let value = match (kind_code == KIND_ENUM64, kind_flag) {
                                (false, false) => i128::from(low),
                                (false, true) => i128::from(low as i32),
                                (true, signed) => {
                                    let raw = u64::from(low) | u64::from(words.u32()?) << 32;
                                    if signed {
                                        i128::from(raw as i64)
                                    } else {
                                        i128::from(raw)
                                    }
                                }
                            };
                            Ok((enumerator, value))
                        })
                        .collect::<Result<_, Error>>()?;
                    Kind::Enum {
                        size: size_or_type,
                        values,
                    }
                }
                KIND_FWD => Kind::Fwd,
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    Kind::Alias {
                        target: size_or_type,
                    }
                }
                KIND_FUNC => Kind::Func,
                KIND_FUNC_PROTO => {
                    for _ in 0..vlen {
                        words.u32()?; // parameter name
                        words.u32()?; // parameter type
                    }
                    Kind::FuncProto
                }
                KIND_VAR => {
                    words.u32()?; // linkage
                    Kind::Var {
                        target: size_or_type,
                    }
                }
                KIND_DATASEC => {
                    let vars = (0..vlen)
                        .map(|_| {
                            let var = words.u32()?;
                            words.u32()?; // offset
                            words.u32()?; // size
                            Ok(var)
                        })
                        .collect::<Result<_, Error>>()?;
                    Kind::DataSec { vars }
                }
                KIND_FLOAT => Kind::Float { size: size_or_type },
                KIND_DECL_TAG => {
                    words.u32()?; // component index
                    Kind::DeclTag
                }
                other => {
                    return Err(error(format!(
                        "type {} has unknown kind {other}",
                        types.len()
                    )));
                }
            };
            types.push(Type {
                name: name(name_off)?,
                kind,
            });
        }
        Ok(Btf { types })
    }

    pub fn get(&self, id: TypeId) -> Result<&Type, Error> {
        self.types
            .get(id as usize)
            .ok_or_else(|| error(format!("no type {id}")))
    }

    /// Every type called `name`, with its id.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = (TypeId, &'a Type)> + 'a {
        (0..)
            .zip(&self.types)
            .filter(move |(_, ty)| ty.name == name)
    }

    /// The type `id` stands for, past typedefs and qualifiers.
    pub fn resolve(&self, mut id: TypeId) -> Result<(TypeId, &Type), Error> {
        for _ in 0..MAX_DEPTH {
            let ty = self.get(id)?;
            match ty.kind {
                Kind::Alias { target } => id = target,
                _ => return Ok((id, ty)),
            }
        }
        Err(error(format!("type {id} aliases too deep")))
    }

    /// Bytes a value of type `id` takes.
    pub fn size(&self, id: TypeId) -> Result<u64, Error> {
        let (id, ty) = self.resolve(id)?;
        match ty.kind {
            Kind::Int { size }
            | Kind::Float { size }
            | Kind::Struct { size, .. }
            | Kind::Union { size }
            | Kind::Enum { size, .. } => Ok(u64::from(size)),
            Kind::Ptr { .. } => Ok(8),
            Kind::Array { element, len } => Ok(self.size(element)? * u64::from(len)),
            _ => Err(error(format!("type {id} ({}) has no size", ty.name))),
        }
    }
}
