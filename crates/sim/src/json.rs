//! A tiny streaming JSON writer: records are rendered straight into the response buffer
//! instead of going through `serde_json::Value`, which keeps large pages cheap.

use std::fmt::Write as _;

/// Appends JSON tokens to a byte buffer, inserting commas automatically.
pub struct J {
    pub buf: Vec<u8>,
    /// One entry per open container: `true` until the first element has been written.
    first: Vec<bool>,
    /// Set after a key so the following value does not get a comma.
    after_key: bool,
}

impl Default for J {
    fn default() -> Self {
        Self::with_capacity(256)
    }
}

impl J {
    pub fn with_capacity(n: usize) -> Self {
        J {
            buf: Vec::with_capacity(n),
            first: Vec::with_capacity(16),
            after_key: false,
        }
    }

    #[inline]
    fn sep(&mut self) {
        if self.after_key {
            self.after_key = false;
            return;
        }
        if let Some(f) = self.first.last_mut() {
            if *f {
                *f = false;
            } else {
                self.buf.push(b',');
            }
        }
    }

    /// Writes a serde view in place: the entities' `#[derive(Serialize)]` structs go straight
    /// into the page being written.
    pub fn ser<T: serde::Serialize + ?Sized>(&mut self, v: &T) -> &mut Self {
        self.sep();
        // Writing into a Vec fails only for a map with non-string keys, which no view has.
        let _ = serde_json::to_writer(&mut self.buf, v);
        self
    }

    pub fn obj(&mut self) -> &mut Self {
        self.sep();
        self.buf.push(b'{');
        self.first.push(true);
        self
    }
    pub fn end_obj(&mut self) -> &mut Self {
        self.first.pop();
        self.buf.push(b'}');
        self
    }
    pub fn arr(&mut self) -> &mut Self {
        self.sep();
        self.buf.push(b'[');
        self.first.push(true);
        self
    }
    pub fn end_arr(&mut self) -> &mut Self {
        self.first.pop();
        self.buf.push(b']');
        self
    }
    pub fn key(&mut self, k: &str) -> &mut Self {
        self.sep();
        self.write_str(k);
        self.buf.push(b':');
        self.after_key = true;
        self
    }
    pub fn s(&mut self, v: &str) -> &mut Self {
        self.sep();
        self.write_str(v);
        self
    }
    pub fn os(&mut self, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.s(v),
            None => self.null(),
        }
    }
    pub fn i(&mut self, v: i64) -> &mut Self {
        self.sep();
        push_int(&mut self.buf, v);
        self
    }
    pub fn b(&mut self, v: bool) -> &mut Self {
        self.sep();
        self.buf
            .extend_from_slice(if v { b"true" } else { b"false" });
        self
    }
    pub fn null(&mut self) -> &mut Self {
        self.sep();
        self.buf.extend_from_slice(b"null");
        self
    }
    // Convenience key+value pairs.
    pub fn ks(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k).s(v)
    }
    pub fn kos(&mut self, k: &str, v: Option<&str>) -> &mut Self {
        self.key(k).os(v)
    }
    pub fn ki(&mut self, k: &str, v: i64) -> &mut Self {
        self.key(k).i(v)
    }
    pub fn kb(&mut self, k: &str, v: bool) -> &mut Self {
        self.key(k).b(v)
    }
    pub fn knull(&mut self, k: &str) -> &mut Self {
        self.key(k).null()
    }

    fn write_str(&mut self, s: &str) {
        self.buf.push(b'"');
        let bytes = s.as_bytes();
        let mut start = 0;
        for (i, &c) in bytes.iter().enumerate() {
            let esc: &[u8] = match c {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0..=0x1f => {
                    self.buf.extend_from_slice(&bytes[start..i]);
                    let _ = write!(StrBuf(&mut self.buf), "\\u{:04x}", c);
                    start = i + 1;
                    continue;
                }
                _ => continue,
            };
            self.buf.extend_from_slice(&bytes[start..i]);
            self.buf.extend_from_slice(esc);
            start = i + 1;
        }
        self.buf.extend_from_slice(&bytes[start..]);
        self.buf.push(b'"');
    }
}

struct StrBuf<'a>(&'a mut Vec<u8>);
impl std::fmt::Write for StrBuf<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

fn push_int(buf: &mut Vec<u8>, v: i64) {
    let mut tmp = [0u8; 24];
    let mut n = v.unsigned_abs();
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        i -= 1;
        tmp[i] = b'-';
    }
    buf.extend_from_slice(&tmp[i..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn writes_valid_json() {
        let mut j = J::default();
        j.obj()
            .ks("a", "x\"y\n\u{1}")
            .ki("b", -12)
            .key("c")
            .arr()
            .i(1)
            .ser(&1.5)
            .null()
            .end_arr();
        j.key("d").obj().end_obj().end_obj();
        let v: serde_json::Value = serde_json::from_slice(&j.buf).unwrap();
        assert_eq!(v["a"], "x\"y\n\u{1}");
        assert_eq!(v["b"], -12);
        assert_eq!(v["c"][1], 1.5);
    }
}
