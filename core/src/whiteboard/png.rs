//! PNG export: the page's SVG rendered with resvg (pure Rust: usvg parses, tiny-skia
//! rasterizes). Text uses the system's fonts, loaded once; without any installed font, text
//! items are left out of the picture and everything else is drawn.

use std::sync::{Arc, OnceLock};

use resvg::{tiny_skia, usvg};

/// Why a page could not be rendered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cannot render the page: {0}")]
pub struct RenderError(pub String);

fn fonts() -> Arc<usvg::fontdb::Database> {
    static FONTS: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    Arc::clone(FONTS.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        db.load_system_fonts();
        Arc::new(db)
    }))
}

/// Renders an SVG document to PNG bytes at its own size (at most 8192 × 8192 pixels).
pub fn svg_to_png(svg: &str) -> Result<Vec<u8>, RenderError> {
    let options = usvg::Options {
        fontdb: fonts(),
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(svg, &options).map_err(|e| RenderError(e.to_string()))?;
    let size = tree.size().to_int_size();
    if size.width() > 8192 || size.height() > 8192 {
        return Err(RenderError(format!(
            "{}x{} is larger than 8192x8192",
            size.width(),
            size.height()
        )));
    }
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| RenderError("empty page size".into()))?;
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap.encode_png().map_err(|e| RenderError(e.to_string()))
}
