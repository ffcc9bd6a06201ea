//! Server-side HTML from templates (minijinja, auto-escaping), with the brand from config.

use std::sync::Arc;

use minijinja::{Environment, Value};

use crate::config::PortalSettings;

#[derive(Debug, thiserror::Error)]
#[error("template {name}: {source}")]
pub struct RenderError {
    name: String,
    #[source]
    source: minijinja::Error,
}

/// Templates shipped in the binary. Other modules add theirs with [`Templates::with`].
#[derive(Clone)]
pub struct Templates {
    env: Arc<Environment<'static>>,
    brand: Value,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Templates")
    }
}

/// (name, source) pairs compiled into the binary.
pub type TemplateSet = &'static [(&'static str, &'static str)];

impl Templates {
    pub fn new(portal: &PortalSettings, sets: &[TemplateSet]) -> Result<Templates, RenderError> {
        let mut env = Environment::new();
        for set in sets {
            for (name, src) in set.iter() {
                env.add_template(name, src).map_err(|source| RenderError {
                    name: (*name).to_string(),
                    source,
                })?;
            }
        }
        let brand = minijinja::context! {
            product_name => portal.product_name.clone(),
            logo_url => portal.logo_url.clone(),
            accent => portal.accent_color.clone(),
        };
        Ok(Templates {
            env: Arc::new(env),
            brand,
        })
    }

    /// Renders `name` with `ctx` plus `brand` (product name, logo, accent colour).
    pub fn render(&self, name: &str, ctx: Value) -> Result<String, RenderError> {
        let tmpl = self.env.get_template(name).map_err(|source| RenderError {
            name: name.to_string(),
            source,
        })?;
        tmpl.render(minijinja::context! { brand => self.brand.clone(), ..ctx })
            .map_err(|source| RenderError {
                name: name.to_string(),
                source,
            })
    }
}
