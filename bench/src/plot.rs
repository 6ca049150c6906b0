//! The soak's picture: the server's resident set, CPU use and counts (open files, threads,
//! async tasks, participants) over time, stacked in one PNG.
//!
//! Drawn with plotters' in-memory bitmap backend and written with `png`. Labels use a system
//! sans-serif font found with fontdb (pure Rust, no fontconfig or freetype library); on a
//! machine without any font the plot is drawn without text.

use std::path::Path;
use std::sync::OnceLock;

use anyhow::Context;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

/// One line of a panel.
pub struct Line<'a> {
    /// Its legend.
    pub label: &'a str,
    /// Its colour.
    pub color: RGBColor,
    /// (minutes, value) points.
    pub points: Vec<(f64, f64)>,
}

/// One panel: a title, the unit of its y axis, its lines.
pub struct Panel<'a> {
    /// Shown above it.
    pub title: String,
    /// The y axis's description.
    pub unit: &'a str,
    /// What it draws.
    pub lines: Vec<Line<'a>>,
}

/// Width of the picture, pixels.
const WIDTH: u32 = 1200;
/// Height of one panel, pixels.
const PANEL_HEIGHT: u32 = 320;

/// The family name the labels' font is registered under.
const FONT: &str = "sans-serif";

/// Registers a system sans-serif font for the labels, once; false when the machine has none.
fn font_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        let Some(bytes) = system_sans_font() else {
            return false;
        };
        // plotters keeps fonts for the life of the process; so does this one-off bench.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        register_font(FONT, FontStyle::Normal, bytes).is_ok()
    })
}

/// The bytes of a sans-serif font installed on this machine.
fn system_sans_font() -> Option<Vec<u8>> {
    let mut db = fontdb::Database::new();
    db.load_system_fonts();
    let families = [
        fontdb::Family::Name("DejaVu Sans"),
        fontdb::Family::Name("Liberation Sans"),
        fontdb::Family::Name("Noto Sans"),
        fontdb::Family::SansSerif,
    ];
    let id = db
        .query(&fontdb::Query {
            families: &families,
            ..fontdb::Query::default()
        })
        .or_else(|| db.faces().next().map(|face| face.id))?;
    db.with_face_data(id, |data, _index| data.to_vec())
}

/// Draws `panels` one above the other, time in minutes along x, a dashed line at
/// `marker_minutes` (the end of the warm-up), and writes the PNG to `path`.
pub fn write_png(
    path: &Path,
    title: &str,
    panels: &[Panel<'_>],
    marker_minutes: Option<f64>,
) -> anyhow::Result<()> {
    let labels = font_ready();
    let height = PANEL_HEIGHT * u32::try_from(panels.len().max(1))?;
    let mut rgb = vec![0u8; usize::try_from(WIDTH * height)? * 3];
    draw(&mut rgb, height, title, panels, marker_minutes, labels)
        .map_err(|e| anyhow::anyhow!("drawing the plot: {e}"))?;
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), WIDTH, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&rgb)?;
    writer.finish()?;
    Ok(())
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw(
    rgb: &mut [u8],
    height: u32,
    title: &str,
    panels: &[Panel<'_>],
    marker_minutes: Option<f64>,
    labels: bool,
) -> DrawResult {
    let root = BitMapBackend::with_buffer(rgb, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = if labels {
        root.titled(title, (FONT, 22))?
    } else {
        root
    };
    let x_end = panels
        .iter()
        .flat_map(|p| p.lines.iter())
        .flat_map(|l| l.points.iter().map(|(x, _)| *x))
        .fold(0.0_f64, f64::max)
        .max(0.1);
    for (area, panel) in root.split_evenly((panels.len(), 1)).iter().zip(panels) {
        draw_panel(area, panel, x_end, marker_minutes, labels)?;
    }
    root.present()?;
    Ok(())
}

fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    panel: &Panel<'_>,
    x_end: f64,
    marker_minutes: Option<f64>,
    labels: bool,
) -> DrawResult {
    let values = || {
        panel
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
    };
    let y_max = values().fold(f64::MIN, f64::max);
    let y_min = values().fold(f64::MAX, f64::min);
    let (y_min, y_max) = if y_max < y_min {
        (0.0, 1.0)
    } else {
        // From zero when the values sit near it; otherwise a margin around them, so a flat
        // line shows its small wobbles without pretending they are large.
        let span = (y_max - y_min).max(y_max.abs() * 0.05).max(1.0);
        let low = if y_min <= span {
            0.0
        } else {
            y_min - span * 0.5
        };
        (low, y_max + span * 0.15)
    };
    let mut builder = ChartBuilder::on(area);
    builder.margin(12);
    if labels {
        builder
            .caption(&panel.title, (FONT, 17))
            .x_label_area_size(36)
            .y_label_area_size(70);
    }
    let mut chart = builder.build_cartesian_2d(0.0..x_end, y_min..y_max)?;
    let mut mesh = chart.configure_mesh();
    if labels {
        mesh.x_desc("minutes")
            .y_desc(panel.unit)
            .label_style((FONT, 13));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw()?;
    if let Some(marker) = marker_minutes {
        chart.draw_series(DashedLineSeries::new(
            [(marker, y_min), (marker, y_max)],
            6,
            4,
            ShapeStyle::from(&RGBColor(150, 150, 150)).stroke_width(1),
        ))?;
    }
    for line in &panel.lines {
        let color = line.color;
        let series = chart.draw_series(LineSeries::new(
            line.points.iter().copied(),
            color.stroke_width(2),
        ))?;
        if labels {
            series
                .label(line.label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color));
        }
    }
    if labels {
        chart
            .configure_series_labels()
            .label_font((FONT, 13))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_png_of_every_panel() {
        let dir = std::env::temp_dir().join(format!("aula-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("plot.png");
        let ramp: Vec<(f64, f64)> = (0..60)
            .map(|i| (f64::from(i) / 6.0, f64::from(i)))
            .collect();
        let panels = [
            Panel {
                title: "RSS".into(),
                unit: "MiB",
                lines: vec![Line {
                    label: "rss",
                    color: BLUE,
                    points: ramp.clone(),
                }],
            },
            Panel {
                title: "counts".into(),
                unit: "count",
                lines: vec![
                    Line {
                        label: "a",
                        color: RED,
                        points: ramp,
                    },
                    // An empty line is drawn as nothing, not an error.
                    Line {
                        label: "b",
                        color: GREEN,
                        points: Vec::new(),
                    },
                ],
            },
        ];
        write_png(&path, "test", &panels, Some(2.0)).unwrap();
        let decoder =
            png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert_eq!((info.width, info.height), (WIDTH, 2 * PANEL_HEIGHT));
        // Some pixels carry the blue of the first line.
        let blue = pixels
            .chunks(3)
            .filter(|p| p[0] < 40 && p[1] < 40 && p[2] > 200)
            .count();
        assert!(blue > 100, "{blue} blue pixels");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
