//! A plain file or block device served as an [`Export`], without a journal: the
//! [`BlockFile`] store as the NBD server sees it (the example server, tests, tools).

use std::io;
use std::path::Path;

use super::block::BlockFile;
use super::export::Export;

#[derive(Debug)]
pub struct FileExport {
    store: BlockFile,
    read_only: bool,
}

impl FileExport {
    /// Opens an existing file or block device ([`BlockFile::open`]).
    pub fn open(path: &Path, read_only: bool) -> io::Result<FileExport> {
        Ok(FileExport {
            store: BlockFile::open(path, read_only)?,
            read_only,
        })
    }

    /// Creates a sparse regular file of `size` bytes; refuses to replace an existing one.
    pub fn create(path: &Path, size: u64) -> io::Result<FileExport> {
        Ok(FileExport {
            store: BlockFile::create(path, size)?,
            read_only: false,
        })
    }
}

impl Export for FileExport {
    fn size(&self) -> u64 {
        self.store.size()
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.store.read_at(buf, offset)
    }

    fn write_at(&self, data: &[u8], offset: u64, fua: bool) -> io::Result<()> {
        self.store.write_at(data, offset)?;
        if fua {
            self.store.sync()?;
        }
        Ok(())
    }

    fn write_zeroes(&self, offset: u64, len: u64, may_trim: bool, fua: bool) -> io::Result<()> {
        self.store.write_zeroes(offset, len, may_trim)?;
        if fua {
            self.store.sync()?;
        }
        Ok(())
    }

    fn trim(&self, offset: u64, len: u64) -> io::Result<()> {
        self.store.trim(offset, len)
    }

    fn flush(&self) -> io::Result<()> {
        self.store.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_its_store_and_a_read_only_one_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("disk.img");
        let e = FileExport::create(&p, 4 << 20).unwrap();
        assert_eq!(e.size(), 4 << 20);
        assert!(!e.read_only());
        e.write_at(&[0xab; 8192], 4096, true).unwrap();
        e.write_zeroes(4096, 4096, false, true).unwrap();
        e.trim(0, 4096).unwrap();
        e.flush().unwrap();
        let ro = FileExport::open(&p, true).unwrap();
        assert!(ro.read_only());
        let mut buf = [1u8; 8192];
        ro.read_at(&mut buf, 4096).unwrap();
        assert!(buf[..4096].iter().all(|&b| b == 0));
        assert!(buf[4096..].iter().all(|&b| b == 0xab));
    }
}
