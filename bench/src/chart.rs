//! Charts of a suite's results (`bench <suite> --chart DIR`, and `bench report`): PNG files
//! drawn with plotters' bitmap backend. Text is set in DejaVu Sans, read at run time from
//! `DUALCHAIN_CHART_FONT` or Debian's `fonts-dejavu-core` (which `scripts/setup.sh`
//! installs), so nothing links fontconfig or freetype.
//!
//! Every chart names its units, and every baseline is drawn beside what it is the baseline
//! for: the window-1 run beside the pipelined one, offered load beside committed load,
//! bellperson beside our prover, the paper's figures beside ours, a ratio of 1 beside
//! ratios.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Result};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

/// The font, when `DUALCHAIN_CHART_FONT` names none.
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const FONT: &str = "sans-serif";
/// One panel's size in pixels.
const PANEL: (u32, u32) = (720, 440);

/// The `key=value,key=value` parameters of a row.
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(params: &str) -> Self {
        Self(
            params
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// A numeric parameter; `2^k` is read as a power of two.
    pub fn number(&self, key: &str) -> Option<f64> {
        let v = self.get(key)?;
        match v.split_once('^') {
            Some((b, e)) => Some(b.parse::<f64>().ok()?.powf(e.parse().ok()?)),
            None => v.parse().ok(),
        }
    }
}

/// A line of points.
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed (a baseline, or a second statistic of the same series).
    pub dashed: bool,
}

/// A line chart.
pub struct Lines {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    pub log_y: bool,
    pub series: Vec<Series>,
}

/// One series of bars: its label, one value per category, and an optional min–max whisker
/// per category (empty for none).
pub type BarSeries = (String, Vec<Option<f64>>, Vec<Option<(f64, f64)>>);

/// Grouped horizontal bars: one group per category, one bar per series.
pub struct Bars {
    pub title: String,
    pub value_label: String,
    pub log: bool,
    pub categories: Vec<String>,
    pub series: Vec<BarSeries>,
    /// A vertical reference line (label, value): e.g. a ratio of 1.
    pub reference: Option<(String, f64)>,
}

impl Bars {
    /// One series of bars, no whiskers, no reference line.
    pub fn single(title: &str, value_label: &str, categories: Vec<String>, label: &str, values: Vec<f64>) -> Self {
        Bars {
            title: title.into(),
            value_label: value_label.into(),
            log: false,
            categories,
            series: vec![(label.into(), values.into_iter().map(Some).collect(), vec![])],
            reference: None,
        }
    }
}

pub enum Panel {
    Lines(Lines),
    Bars(Bars),
}

/// A chart written to a file, with what it shows.
pub struct Chart {
    pub file: PathBuf,
    pub caption: String,
}

fn drawing<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing a chart: {e:?}")
}

/// Registers the font once per process.
fn font() -> Result<()> {
    static LOADED: OnceLock<Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let path = std::env::var("DUALCHAIN_CHART_FONT").unwrap_or_else(|_| DEFAULT_FONT.to_owned());
            let bytes = font_bytes(Path::new(&path))?;
            // Registered for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            plotters::style::register_font(FONT, FontStyle::Normal, bytes)
                .map_err(|_| format!("{path} is not a TrueType font"))
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

fn font_bytes(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| {
        format!(
            "charts need a TrueType font: {}: {e} (install Debian's fonts-dejavu-core, or name a .ttf file in \
             DUALCHAIN_CHART_FONT)",
            path.display()
        )
    })
}

/// Draws `panels` side by side into one PNG.
pub fn write_png(path: &Path, panels: &[Panel]) -> Result<()> {
    font()?;
    if panels.is_empty() {
        bail!("{}: no panel to draw", path.display());
    }
    // Bars need room: a row per bar, at least the panel's height.
    let rows = |p: &Panel| match p {
        Panel::Bars(b) => (b.categories.len() * b.series.len().max(1)) as u32,
        Panel::Lines(_) => 0,
    };
    let height = panels.iter().map(|p| 120 + 18 * rows(p)).fold(PANEL.1, u32::max);
    let size = (PANEL.0 * panels.len() as u32, height);
    {
        let root = BitMapBackend::new(path, size).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        for (area, panel) in root.split_evenly((1, panels.len())).iter().zip(panels) {
            match panel {
                Panel::Lines(l) => lines(area, l)?,
                Panel::Bars(b) => bars(area, b)?,
            }
        }
        root.present().map_err(drawing)?;
    }
    Ok(())
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// The axis range of `values`: from 0 (linear) or a little below the least (log) to a little
/// above the most.
fn range(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let vs: Vec<f64> = values.filter(|v| v.is_finite() && (!log || *v > 0.0)).collect();
    let lo = vs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = vs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    match (vs.is_empty(), log) {
        (true, _) => (if log { 0.1 } else { 0.0 }, 1.0),
        // From the power of ten below the least, so the axis has a labelled tick under the data.
        (false, true) => (10f64.powf((lo / 1.01).log10().floor()), hi * 1.6),
        (false, false) => (lo.min(0.0), if hi > 0.0 { hi * 1.12 } else { 1.0 }),
    }
}

/// An axis label: `250k`, `1.5M`, `0.25`, without trailing zeros.
pub fn tick(v: &f64) -> String {
    let trim = |s: String| if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_owned() } else { s };
    let a = v.abs();
    if a >= 1e6 {
        format!("{}M", trim(format!("{:.2}", v / 1e6)))
    } else if a >= 1e4 {
        format!("{}k", trim(format!("{:.1}", v / 1e3)))
    } else if a >= 1.0 || a == 0.0 {
        trim(format!("{v:.2}"))
    } else {
        let digits = (2 - a.log10().floor() as i32).clamp(0, 9) as usize;
        trim(format!("{v:.digits$}"))
    }
}

fn color(i: usize) -> RGBAColor {
    // Tableau-like colours, then plotters' palette.
    const FIRST: [(u8, u8, u8); 8] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
    ];
    match FIRST.get(i) {
        Some(&(r, g, b)) => RGBColor(r, g, b).to_rgba(),
        None => Palette99::pick(i).to_rgba(),
    }
}

fn lines(area: &Area<'_>, spec: &Lines) -> Result<()> {
    let xs = || spec.series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).filter(|x| x.is_finite());
    let (x0, x1) = range(xs(), spec.log_x);
    let x_least = xs().fold(f64::INFINITY, f64::min);
    let (y0, y1) = range(spec.series.iter().flat_map(|s| s.points.iter().map(|p| p.1)), spec.log_y);
    // A linear axis starts at 0 unless the points sit far from it (sizes 2^12..2^16).
    let (x0, x1) = if !spec.log_x && x_least > 0.3 * x1 {
        let pad = 0.05 * (x1 / 1.12 - x_least).max(1e-9);
        (x_least - pad, x1 / 1.12 + pad)
    } else {
        (x0, x1)
    };
    match (spec.log_x, spec.log_y) {
        (false, false) => lines_in(area, spec, x0..x1, y0..y1),
        (true, false) => lines_in(area, spec, (x0..x1).log_scale(), y0..y1),
        (false, true) => lines_in(area, spec, x0..x1, (y0..y1).log_scale()),
        (true, true) => lines_in(area, spec, (x0..x1).log_scale(), (y0..y1).log_scale()),
    }
}

fn lines_in<X, Y>(area: &Area<'_>, spec: &Lines, x: X, y: Y) -> Result<()>
where
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .caption(&spec.title, (FONT, 18))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .x_desc(&spec.x_label)
        .y_desc(&spec.y_label)
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .light_line_style(RGBColor(238, 238, 238))
        .max_light_lines(4)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()
        .map_err(drawing)?;
    for (i, s) in spec.series.iter().enumerate() {
        let style = ShapeStyle { color: color(i), filled: false, stroke_width: 2 };
        let points: Vec<(f64, f64)> =
            s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
        let anno = if s.dashed {
            chart.draw_series(DashedLineSeries::new(points.clone(), 8, 5, style)).map_err(drawing)?
        } else {
            chart.draw_series(LineSeries::new(points.clone(), style)).map_err(drawing)?
        };
        anno.label(&s.label).legend(move |at| line_glyph(at, style));
        chart.draw_series(points.iter().map(|p| Circle::new(*p, 3, style.filled()))).map_err(drawing)?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

/// A line series' mark in the legend.
fn line_glyph((x, y): (i32, i32), style: ShapeStyle) -> PathElement<(i32, i32)> {
    PathElement::new(vec![(x, y), (x + 20, y)], style)
}

/// The legend of every labelled series, at `position`.
fn legend<'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, CT>,
    position: SeriesLabelPosition,
) -> Result<()> {
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(drawing)
}

fn bars(area: &Area<'_>, spec: &Bars) -> Result<()> {
    let values = spec
        .series
        .iter()
        .flat_map(|(_, vs, w)| vs.iter().flatten().copied().chain(w.iter().flatten().flat_map(|(a, b)| [*a, *b])))
        .chain(spec.reference.as_ref().map(|r| r.1));
    let (v0, v1) = range(values, spec.log);
    // Room on the right for the legend.
    let v1 = if spec.log { v1 * 12.0 } else { v1 * 1.3 };
    if spec.log {
        bars_in(area, spec, (v0..v1).log_scale(), v0)
    } else {
        bars_in(area, spec, v0..v1, 0.0)
    }
}

fn bars_in<X>(area: &Area<'_>, spec: &Bars, x: X, base: f64) -> Result<()>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    let n = spec.categories.len();
    let label_width = spec.categories.iter().map(|c| c.chars().count()).max().unwrap_or(4) as u32 * 7 + 16;
    let mut chart = ChartBuilder::on(area)
        .caption(&spec.title, (FONT, 18))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(label_width.min(PANEL.0 / 2))
        .build_cartesian_2d(x, -0.5..(n as f64 - 0.5))
        .map_err(drawing)?;
    let categories = spec.categories.clone();
    // Categories top to bottom: category i sits at y = n - 1 - i.
    let name = move |y: &f64| {
        let i = n as f64 - 1.0 - y.round();
        if (y - y.round()).abs() < 0.01 && i >= 0.0 && (i as usize) < categories.len() {
            categories[i as usize].clone()
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .x_desc(&spec.value_label)
        .x_label_formatter(&tick)
        .light_line_style(RGBColor(238, 238, 238))
        .max_light_lines(4)
        .y_labels(n.max(1) * 2 + 1)
        .y_label_formatter(&name)
        .disable_y_mesh()
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()
        .map_err(drawing)?;
    let m = spec.series.len().max(1) as f64;
    let height = 0.8 / m;
    for (j, (label, values, whiskers)) in spec.series.iter().enumerate() {
        let c = color(j);
        let rects = values.iter().enumerate().filter_map(|(i, v)| {
            let v = (*v)?;
            let top = (n - 1 - i) as f64 + 0.4 - j as f64 * height;
            Some(Rectangle::new([(base, top - height * 0.92), (v, top)], c.filled()))
        });
        chart
            .draw_series(rects)
            .map_err(drawing)?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled()));
        let whisker = whiskers.iter().enumerate().filter_map(|(i, w)| {
            let (lo, hi) = (*w)?;
            let mid = (n - 1 - i) as f64 + 0.4 - j as f64 * height - height * 0.46;
            Some(PathElement::new(vec![(lo, mid), (hi, mid)], BLACK.stroke_width(2)))
        });
        chart.draw_series(whisker).map_err(drawing)?;
    }
    if let Some((label, v)) = &spec.reference {
        let style = BLACK.stroke_width(1);
        chart
            .draw_series(DashedLineSeries::new(vec![(*v, -0.5), (*v, n as f64 - 0.5)], 6, 4, style))
            .map_err(drawing)?
            .label(label)
            .legend(move |at| line_glyph(at, style));
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn parameters_are_read_with_powers_of_two() {
        let p = Params::parse("n=2^12, backend=cpu,offered=250000,shape=supply-64");
        assert_eq!(p.number("n"), Some(4096.0));
        assert_eq!(p.get("backend"), Some("cpu"));
        assert_eq!(p.number("offered"), Some(250_000.0));
        assert_eq!(p.number("shape"), None);
        assert_eq!(p.get("missing"), None);
        assert_eq!(Params::parse("4 processes, 1 in flight").get("n"), None);
    }

    #[test]
    fn ticks_are_short() {
        assert_eq!(tick(&250_000.0), "250k");
        assert_eq!(tick(&1_500_000.0), "1.5M");
        assert_eq!(tick(&2.0), "2");
        assert_eq!(tick(&0.0), "0");
        assert_eq!(tick(&0.25), "0.25");
        assert_eq!(tick(&0.0123), "0.0123");
        assert_eq!(tick(&1234.5), "1234.5");
    }

    #[test]
    fn a_missing_font_is_named_with_the_fix() {
        let e = font_bytes(Path::new("/nonexistent/font.ttf")).unwrap_err();
        assert!(e.contains("/nonexistent/font.ttf") && e.contains("fonts-dejavu-core"), "{e}");
    }

    /// Distinct colours in a decoded PNG (a blank or failed drawing has one or two).
    pub fn colours(path: &Path) -> (u32, u32, usize) {
        let img = image::open(path).expect("a PNG").to_rgb8();
        let mut seen = std::collections::HashSet::new();
        for p in img.pixels() {
            seen.insert(p.0);
        }
        (img.width(), img.height(), seen.len())
    }

    #[test]
    fn lines_and_bars_are_drawn_on_linear_and_log_axes() {
        let dir = tempfile::tempdir().unwrap();
        let series =
            |dashed| Series { label: "a".into(), points: vec![(1.0, 2.0), (10.0, 30.0), (100.0, f64::NAN)], dashed };
        let mut panels = Vec::new();
        for (log_x, log_y) in [(false, false), (true, false), (false, true), (true, true)] {
            panels.push(Panel::Lines(Lines {
                title: "t".into(),
                x_label: "x (unit)".into(),
                y_label: "y (unit)".into(),
                log_x,
                log_y,
                series: vec![series(false), series(true)],
            }));
        }
        for log in [false, true] {
            panels.push(Panel::Bars(Bars {
                title: "b".into(),
                value_label: "v (s)".into(),
                log,
                categories: vec!["one".into(), "two".into()],
                series: vec![
                    ("ours".into(), vec![Some(1.0), None], vec![Some((0.5, 1.5)), None]),
                    ("baseline".into(), vec![Some(3.0), Some(0.2)], vec![]),
                ],
                reference: Some(("1".into(), 1.0)),
            }));
        }
        let path = dir.path().join("c.png");
        write_png(&path, &panels).unwrap();
        let (w, h, n) = colours(&path);
        assert_eq!((w, h), (PANEL.0 * panels.len() as u32, PANEL.1));
        assert!(n > 20, "only {n} colours: nothing was drawn");
        // No panel is refused; an empty series and no points at all still draw axes.
        let empty = Lines {
            title: "e".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            log_x: true,
            log_y: true,
            series: vec![],
        };
        write_png(&dir.path().join("e.png"), &[Panel::Lines(empty)]).unwrap();
        assert!(write_png(&dir.path().join("none.png"), &[]).is_err());
    }
}
