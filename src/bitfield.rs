//! One bit per chunk: which chunks a peer has.

use std::fmt;

/// Why a peer's have-set could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BitfieldError {
    WrongLength { digits: usize, chunks: u32 },
    NotHex,
    StrayBits,
}

impl fmt::Display for BitfieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BitfieldError::WrongLength { digits, chunks } => {
                write!(f, "bitfield of {digits} hex digits for {chunks} chunks")
            }
            BitfieldError::NotHex => write!(f, "bitfield is not hex"),
            BitfieldError::StrayBits => write!(f, "bitfield has bits past the last chunk"),
        }
    }
}

impl std::error::Error for BitfieldError {}

#[derive(Clone, PartialEq, Eq)]
pub struct Bitfield {
    bytes: Vec<u8>,
    len: u32,
    ones: u32,
}

impl Bitfield {
    pub fn new(len: u32) -> Bitfield {
        Bitfield { bytes: vec![0; (len as usize).div_ceil(8)], len, ones: 0 }
    }

    pub fn full(len: u32) -> Bitfield {
        let mut b = Bitfield::new(len);
        (0..len).for_each(|i| {
            b.set(i);
        });
        b
    }

    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, i: u32) -> bool {
        i < self.len && self.bytes[(i / 8) as usize] & (0x80 >> (i % 8)) != 0
    }

    /// Sets bit `i`; returns true if it was clear.
    pub fn set(&mut self, i: u32) -> bool {
        if i >= self.len || self.get(i) {
            return false;
        }
        self.bytes[(i / 8) as usize] |= 0x80 >> (i % 8);
        self.ones += 1;
        true
    }

    /// Clears bit `i`; returns true if it was set.
    pub fn clear(&mut self, i: u32) -> bool {
        if !self.get(i) {
            return false;
        }
        self.bytes[(i / 8) as usize] &= !(0x80 >> (i % 8));
        self.ones -= 1;
        true
    }

    pub fn count(&self) -> u32 {
        self.ones
    }

    pub fn is_complete(&self) -> bool {
        self.ones == self.len
    }

    pub fn ones(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.len).filter(|i| self.get(*i))
    }

    /// The bits as BitTorrent sends them: most significant bit first, spare bits clear.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Reads a BitTorrent `bitfield` for `len` pieces; refuses a wrong length or set spare
    /// bits (BEP 3 says to drop such a peer).
    pub fn from_bytes(bytes: &[u8], len: u32) -> Result<Bitfield, BitfieldError> {
        let want = (len as usize).div_ceil(8);
        if bytes.len() != want {
            return Err(BitfieldError::WrongLength { digits: bytes.len() * 2, chunks: len });
        }
        let spare = want as u32 * 8 - len;
        if spare > 0 && bytes[want - 1] & ((1u8 << spare) - 1) != 0 {
            return Err(BitfieldError::StrayBits);
        }
        let ones = bytes.iter().map(|x| x.count_ones()).sum();
        Ok(Bitfield { bytes: bytes.to_vec(), len, ones })
    }

    pub fn to_hex(&self) -> String {
        self.bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses the hex form for a file of `len` chunks; refuses wrong lengths and stray bits.
    pub fn from_hex(hex: &str, len: u32) -> Result<Bitfield, BitfieldError> {
        let want = (len as usize).div_ceil(8);
        if hex.len() != want * 2 || !hex.is_ascii() {
            return Err(BitfieldError::WrongLength { digits: hex.len(), chunks: len });
        }
        let mut b = Bitfield::new(len);
        b.bytes = crate::hash::decode_hex(hex).ok_or(BitfieldError::NotHex)?;
        let spare = want as u32 * 8 - len;
        if spare > 0 && b.bytes[want - 1] & ((1u8 << spare) - 1) != 0 {
            return Err(BitfieldError::StrayBits);
        }
        b.ones = b.bytes.iter().map(|x| x.count_ones()).sum();
        Ok(b)
    }
}

impl fmt::Debug for Bitfield {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bitfield({}/{})", self.ones, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_count_and_hex_round_trip() {
        let mut b = Bitfield::new(10);
        assert!(b.set(0) && b.set(9) && !b.set(9) && !b.set(10));
        assert_eq!(b.count(), 2);
        assert_eq!(b.to_hex(), "8040");
        let back = Bitfield::from_hex("8040", 10).unwrap();
        assert_eq!(back, b);
        assert_eq!(back.ones().collect::<Vec<_>>(), vec![0, 9]);
        assert!(Bitfield::full(10).is_complete());
    }

    #[test]
    fn refuses_bad_hex() {
        assert!(Bitfield::from_hex("80", 10).is_err());
        assert!(Bitfield::from_hex("zz40", 10).is_err());
        assert!(Bitfield::from_hex("8060", 10).is_err(), "bit 10 does not exist");
        assert!(Bitfield::from_hex("éé", 10).is_err());
    }
}
