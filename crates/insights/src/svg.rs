//! Charts as SVG documents built on the server: horizontal bars (a funnel) and lines
//! over weeks (conversion stability). Every text is escaped; the documents carry no
//! script and no external reference, so pages can show them as `data:` images.

use std::fmt::Write as _;

/// Colours of the series, in order (repeated when there are more series).
const PALETTE: [&str; 8] =
    ["#2563eb", "#16a34a", "#ea580c", "#9333ea", "#0891b2", "#dc2626", "#ca8a04", "#4b5563"];

/// Width of every chart, in SVG units.
const WIDTH: f64 = 640.0;

/// One bar: its label, its value and the text written after it.
#[derive(Clone, Debug)]
pub struct Bar {
    /// The label on the left.
    pub label: String,
    /// The value (bars are scaled to the largest).
    pub value: f64,
    /// The text after the bar (e.g. `12 · 75%`).
    pub note: String,
}

/// One line: its name and a value (0–1) per point, none where there is no value.
#[derive(Clone, Debug)]
pub struct Series {
    /// The name in the legend.
    pub name: String,
    /// The values.
    pub values: Vec<Option<f64>>,
}

/// Escapes text for SVG (XML) content and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn open(height: f64, title: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"12\" \
         role=\"img\"><title>{}</title><rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\
         <text x=\"8\" y=\"18\" font-size=\"14\" font-weight=\"bold\">{}</text>",
        escape(title),
        escape(title)
    )
}

/// Horizontal bars, one per row, scaled to the largest value.
pub fn bars(title: &str, bars: &[Bar]) -> String {
    let row = 26.0;
    let top = 32.0;
    let label_width = 150.0;
    let bar_width = WIDTH - label_width - 130.0;
    let height = top + row * bars.len().max(1) as f64 + 8.0;
    let largest = bars.iter().map(|bar| bar.value).fold(0.0_f64, f64::max);
    let mut svg = open(height, title);
    for (index, bar) in bars.iter().enumerate() {
        let y = top + row * index as f64;
        let width = if largest > 0.0 { bar_width * bar.value.max(0.0) / largest } else { 0.0 };
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{label_width}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"18\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            label_width - 6.0,
            y + 13.0,
            escape(&bar.label),
            y,
            PALETTE[0],
            label_width + width + 6.0,
            y + 13.0,
            escape(&bar.note),
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Lines over labelled points, values from 0 to 1 shown as percentages.
pub fn lines(title: &str, points: &[String], series: &[Series]) -> String {
    let (left, right, top, plot_height) = (48.0, 16.0, 32.0, 180.0);
    let legend_rows = series.len().div_ceil(3) as f64;
    let height = top + plot_height + 40.0 + legend_rows * 18.0;
    let plot_width = WIDTH - left - right;
    let step = if points.len() > 1 { plot_width / (points.len() - 1) as f64 } else { 0.0 };
    let x = |index: usize| left + step * index as f64;
    let y = |value: f64| top + plot_height * (1.0 - value.clamp(0.0, 1.0));
    let mut svg = open(height, title);
    for tick in 0..=4 {
        let value = f64::from(tick) / 4.0;
        let _ = write!(
            svg,
            "<line x1=\"{left}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#e5e7eb\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}%</text>",
            WIDTH - right,
            y(value),
            y(value),
            left - 4.0,
            y(value) + 4.0,
            tick * 25
        );
    }
    for (index, point) in points.iter().enumerate() {
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{}</text>",
            x(index),
            top + plot_height + 14.0,
            escape(point)
        );
    }
    for (number, line) in series.iter().enumerate() {
        let colour = PALETTE[number % PALETTE.len()];
        // A gap in the data breaks the line into segments.
        let mut segment: Vec<String> = Vec::new();
        let flush = |segment: &mut Vec<String>, svg: &mut String| {
            if segment.len() > 1 {
                let _ = write!(
                    svg,
                    "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>",
                    segment.join(" ")
                );
            }
            segment.clear();
        };
        for (index, value) in line.values.iter().enumerate() {
            match value {
                Some(value) => {
                    segment.push(format!("{:.1},{:.1}", x(index), y(*value)));
                    let _ = write!(
                        svg,
                        "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/>",
                        x(index),
                        y(*value)
                    );
                }
                None => flush(&mut segment, &mut svg),
            }
        }
        flush(&mut segment, &mut svg);
        let legend_x = left + (number % 3) as f64 * 190.0;
        let legend_y = top + plot_height + 34.0 + (number / 3) as f64 * 18.0;
        let _ = write!(
            svg,
            "<rect x=\"{legend_x:.1}\" y=\"{:.1}\" width=\"12\" height=\"4\" fill=\"{colour}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            legend_y - 4.0,
            legend_x + 16.0,
            legend_y,
            escape(&line.name)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_escaped() {
        let svg = bars("<b>&", &[Bar { label: "a\"<".into(), value: 1.0, note: "1".into() }]);
        assert!(svg.contains("&lt;b&gt;&amp;"));
        assert!(svg.contains("a&quot;&lt;"));
        assert!(!svg.contains("<b>"));
        let svg = lines(
            "t",
            &["w1".into(), "w2".into()],
            &[Series { name: "x".into(), values: vec![Some(0.5), None] }],
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}
