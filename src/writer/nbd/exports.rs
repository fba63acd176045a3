//! A fixed set of named exports: for tests, examples and the benchmark server.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::writer::export::{ClientInfo, Export, ExportInfo, ExportResolver, OpenError};

/// Serves the exports it was given, to everyone.
#[derive(Default)]
pub struct StaticResolver {
    exports: BTreeMap<String, (String, Arc<dyn Export>)>,
}

impl StaticResolver {
    pub fn new() -> StaticResolver {
        StaticResolver::default()
    }

    pub fn with(mut self, name: &str, description: &str, export: Arc<dyn Export>) -> Self {
        self.exports
            .insert(name.to_owned(), (description.to_owned(), export));
        self
    }
}

impl ExportResolver for StaticResolver {
    fn list(&self, _client: &ClientInfo) -> Vec<ExportInfo> {
        self.exports
            .iter()
            .map(|(name, (description, _))| ExportInfo {
                name: name.clone(),
                description: description.clone(),
            })
            .collect()
    }

    fn open(&self, name: &str, _client: &ClientInfo) -> Result<Arc<dyn Export>, OpenError> {
        self.exports
            .get(name)
            .map(|(_, e)| e.clone())
            .ok_or_else(|| OpenError::Unknown(name.to_owned()))
    }
}
