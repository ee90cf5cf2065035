//! Just enough ELF (pure): the machine a binary is for, and its program
//! interpreter (the dynamic loader the kernel starts it with).

/// What the header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `e_machine`.
    pub machine: u16,
    /// Big-endian data.
    pub big_endian: bool,
    /// 64-bit class.
    pub is_64: bool,
}

const PT_INTERP: u32 = 3;

/// Parses the ELF header, or says why `bytes` are not an ELF file.
pub fn header(bytes: &[u8]) -> Result<Header, String> {
    if bytes.len() < 64 || bytes[..4] != *b"\x7fELF" {
        return Err("no ELF magic".into());
    }
    let is_64 = match bytes[4] {
        1 => false,
        2 => true,
        c => return Err(format!("unknown ELF class {c}")),
    };
    let big_endian = match bytes[5] {
        1 => false,
        2 => true,
        d => return Err(format!("unknown ELF data encoding {d}")),
    };
    let r = Reader { bytes, big_endian };
    let machine = r.u16(18).ok_or("short header")?;
    Ok(Header {
        machine,
        big_endian,
        is_64,
    })
}

/// The `PT_INTERP` path (`/lib64/ld-linux-x86-64.so.2`), or `None` for a
/// static binary or something that is not ELF.
pub fn interpreter(bytes: &[u8]) -> Option<String> {
    let h = header(bytes).ok()?;
    let r = Reader {
        bytes,
        big_endian: h.big_endian,
    };
    let (phoff, phentsize, phnum) = if h.is_64 {
        (r.u64(32)?, r.u16(54)?, r.u16(56)?)
    } else {
        (u64::from(r.u32(28)?), r.u16(42)?, r.u16(44)?)
    };
    for i in 0..u64::from(phnum) {
        let at = usize::try_from(phoff.checked_add(i.checked_mul(u64::from(phentsize))?)?).ok()?;
        if r.u32(at)? != PT_INTERP {
            continue;
        }
        let (offset, size) = if h.is_64 {
            (r.u64(at + 8)?, r.u64(at + 32)?)
        } else {
            (u64::from(r.u32(at + 4)?), u64::from(r.u32(at + 16)?))
        };
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(usize::try_from(size).ok()?)?;
        let raw = bytes.get(start..end)?;
        let text = raw.split(|&b| b == 0).next()?;
        return String::from_utf8(text.to_vec()).ok();
    }
    None
}

struct Reader<'a> {
    bytes: &'a [u8],
    big_endian: bool,
}

impl Reader<'_> {
    fn take<const N: usize>(&self, at: usize) -> Option<[u8; N]> {
        self.bytes.get(at..at.checked_add(N)?)?.try_into().ok()
    }

    fn u16(&self, at: usize) -> Option<u16> {
        let b = self.take::<2>(at)?;
        Some(if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    fn u32(&self, at: usize) -> Option<u32> {
        let b = self.take::<4>(at)?;
        Some(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    fn u64(&self, at: usize) -> Option<u64> {
        let b = self.take::<8>(at)?;
        Some(if self.big_endian {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal little-endian ELF64 for x86-64 with one PT_INTERP header.
    pub(crate) fn fake_elf(interp: &str) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[18..20].copy_from_slice(&62u16.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&1u16.to_le_bytes());
        let off = b.len() as u64;
        b[64..68].copy_from_slice(&PT_INTERP.to_le_bytes());
        b[72..80].copy_from_slice(&off.to_le_bytes());
        b[96..104].copy_from_slice(&(interp.len() as u64 + 1).to_le_bytes());
        b.extend_from_slice(interp.as_bytes());
        b.push(0);
        b
    }

    #[test]
    fn the_header_gives_machine_and_class() {
        let h = header(&fake_elf("/lib64/ld-linux-x86-64.so.2")).unwrap();
        assert_eq!(
            h,
            Header {
                machine: 62,
                big_endian: false,
                is_64: true
            }
        );
    }

    #[test]
    fn the_interpreter_is_read_from_pt_interp() {
        let elf = fake_elf("/lib64/ld-linux-x86-64.so.2");
        assert_eq!(
            interpreter(&elf).as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
    }

    #[test]
    fn non_elf_and_truncated_input_is_refused_without_panicking() {
        assert_eq!(header(b"#!/bin/sh\n").unwrap_err(), "no ELF magic");
        let elf = fake_elf("/lib/ld.so");
        for len in 0..elf.len() {
            let _ = header(&elf[..len]);
            let _ = interpreter(&elf[..len]);
        }
        let mut bad = elf.clone();
        bad[4] = 9;
        assert!(header(&bad).unwrap_err().contains("class"));
        let mut huge = elf;
        huge[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(interpreter(&huge), None);
    }

    #[test]
    fn this_test_binary_is_an_elf_for_the_host() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let h = header(&me).unwrap();
        let arch = crate::oci::goarch(h.machine, h.big_endian);
        let expected = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        assert_eq!(arch, Some(expected));
    }
}
