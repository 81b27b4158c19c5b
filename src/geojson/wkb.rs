//! WKB (OGC Simple Features, little-endian, 2D): how a territory is stored.

use geo::{Coord, LineString, MultiPolygon, Polygon};

const WKB_POLYGON: u32 = 3;
const WKB_MULTIPOLYGON: u32 = 6;

/// Encode as a WKB MultiPolygon (little-endian).
pub fn to_wkb(mp: &MultiPolygon<f64>) -> Vec<u8> {
    // Sized exactly: a crawl keeps one WKB per territory until the server commits, and a
    // doubling Vec would hold up to twice the bytes for each of them.
    let len = 9 + mp
        .0
        .iter()
        .map(|p| {
            9 + std::iter::once(p.exterior())
                .chain(p.interiors())
                .map(|r| 4 + 16 * r.0.len())
                .sum::<usize>()
        })
        .sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.push(1u8);
    out.extend_from_slice(&WKB_MULTIPOLYGON.to_le_bytes());
    out.extend_from_slice(&(mp.0.len() as u32).to_le_bytes());
    for p in &mp.0 {
        out.push(1u8);
        out.extend_from_slice(&WKB_POLYGON.to_le_bytes());
        out.extend_from_slice(&((1 + p.interiors().len()) as u32).to_le_bytes());
        for ring in std::iter::once(p.exterior()).chain(p.interiors()) {
            out.extend_from_slice(&(ring.0.len() as u32).to_le_bytes());
            for c in &ring.0 {
                out.extend_from_slice(&c.x.to_le_bytes());
                out.extend_from_slice(&c.y.to_le_bytes());
            }
        }
    }
    debug_assert_eq!(out.len(), len, "WKB size computed exactly");
    out
}

/// Why stored WKB could not be read (only our own writer produces it, so this means
/// corruption).
#[derive(Debug, thiserror::Error)]
#[error("invalid WKB at byte {0}")]
pub struct WkbError(usize);

struct WkbReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl WkbReader<'_> {
    fn take<const N: usize>(&mut self, le: bool) -> Result<[u8; N], WkbError> {
        let s = self
            .buf
            .get(self.pos..self.pos + N)
            .ok_or(WkbError(self.pos))?;
        self.pos += N;
        let mut a: [u8; N] = s.try_into().map_err(|_| WkbError(self.pos))?;
        if !le {
            a.reverse();
        }
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, WkbError> {
        Ok(self.take::<1>(true)?[0])
    }
    fn u32(&mut self, le: bool) -> Result<u32, WkbError> {
        Ok(u32::from_le_bytes(self.take(le)?))
    }
    fn f64(&mut self, le: bool) -> Result<f64, WkbError> {
        Ok(f64::from_le_bytes(self.take(le)?))
    }
    /// A count, bounded by what the remaining bytes could hold (a corrupt count must not
    /// make us allocate gigabytes).
    fn count(&mut self, le: bool, min_item_size: usize) -> Result<usize, WkbError> {
        let n = self.u32(le)? as usize;
        if n.saturating_mul(min_item_size) > self.buf.len() - self.pos {
            return Err(WkbError(self.pos));
        }
        Ok(n)
    }
    fn header(&mut self) -> Result<(bool, u32), WkbError> {
        let le = match self.u8()? {
            0 => false,
            1 => true,
            _ => return Err(WkbError(self.pos - 1)),
        };
        Ok((le, self.u32(le)?))
    }
    fn polygon_body(&mut self, le: bool) -> Result<Polygon<f64>, WkbError> {
        let nrings = self.count(le, 4)?;
        let mut rings = Vec::with_capacity(nrings);
        for _ in 0..nrings {
            let npts = self.count(le, 16)?;
            let mut coords = Vec::with_capacity(npts);
            for _ in 0..npts {
                coords.push(Coord {
                    x: self.f64(le)?,
                    y: self.f64(le)?,
                });
            }
            rings.push(LineString(coords));
        }
        if rings.is_empty() {
            return Ok(Polygon::new(LineString(vec![]), vec![]));
        }
        let ext = rings.remove(0);
        Ok(Polygon::new(ext, rings))
    }
}

/// Decode a WKB Polygon or MultiPolygon.
pub fn from_wkb(buf: &[u8]) -> Result<MultiPolygon<f64>, WkbError> {
    let mut r = WkbReader { buf, pos: 0 };
    let (le, ty) = r.header()?;
    match ty {
        WKB_POLYGON => Ok(MultiPolygon(vec![r.polygon_body(le)?])),
        WKB_MULTIPOLYGON => {
            let n = r.count(le, 9)?;
            let mut polys = Vec::with_capacity(n);
            for _ in 0..n {
                let (ple, pty) = r.header()?;
                if pty != WKB_POLYGON {
                    return Err(WkbError(r.pos));
                }
                polys.push(r.polygon_body(ple)?);
            }
            Ok(MultiPolygon(polys))
        }
        _ => Err(WkbError(1)),
    }
}
