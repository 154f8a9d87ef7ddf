//! SVG charts for the report (plotters' SVG backend: no fonts or files needed, the SVG is inlined
//! into the HTML report and written beside the Markdown one).

use plotters::prelude::*;

const COLORS: [RGBColor; 4] = [RGBColor(31, 119, 180), RGBColor(255, 127, 14), RGBColor(44, 160, 44), RGBColor(214, 39, 40)];

/// Horizontal grouped bars: one row per label, one bar per series (values in 0..=1).
pub fn grouped_bars(title: &str, labels: &[String], series: &[(&str, Vec<f64>)]) -> String {
    let mut svg = String::new();
    let row_h = 14 * series.len().max(1) as u32 + 8;
    let height = 70 + row_h * labels.len().max(1) as u32;
    {
        let root = SVGBackend::with_string(&mut svg, (820, height)).into_drawing_area();
        root.fill(&WHITE).expect("svg");
        let n = labels.len().max(1) as i32;
        let slots = series.len().max(1) as i32;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(250)
            // Room right of 1.0 for the legend.
            .build_cartesian_2d(0f64..1.32f64, 0..n * (slots + 1))
            .expect("chart");
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(labels.len() * (slots as usize + 1) + 1)
            .x_labels(7)
            .x_label_formatter(&|x| if *x <= 1.0001 { format!("{x:.1}") } else { String::new() })
            .y_label_formatter(&|y| {
                let row = y / (slots + 1);
                if y % (slots + 1) == slots / 2 && (row as usize) < labels.len() {
                    labels[labels.len() - 1 - row as usize].clone()
                } else {
                    String::new()
                }
            })
            .x_desc("F1")
            .draw()
            .expect("mesh");
        for (si, (name, values)) in series.iter().enumerate() {
            let color = COLORS[si % COLORS.len()];
            chart
                .draw_series(values.iter().enumerate().map(|(li, v)| {
                    let row = (labels.len() - 1 - li) as i32;
                    let y = row * (slots + 1) + si as i32;
                    Rectangle::new([(0.0, y), (v.clamp(0.0, 1.0), y + 1)], color.filled())
                }))
                .expect("bars")
                .label(*name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
        }
        chart.configure_series_labels().position(SeriesLabelPosition::UpperRight).background_style(WHITE.mix(0.9)).border_style(BLACK).draw().expect("legend");
        root.present().expect("svg");
    }
    svg
}

/// One line of [`lines`]: `(name, [(x, mean, std)])`.
pub type Series = (String, Vec<(f64, f64, f64)>);

/// Lines with error bars: each series is `(name, [(x, mean, std)])`; `y_top` fixes the top of the
/// y axis (F1 axes end at 1.0, so that a gap is not drawn larger than it is).
pub fn lines(title: &str, x_desc: &str, y_desc: &str, series: &[Series], y_top: Option<f64>) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 400)).into_drawing_area();
        root.fill(&WHITE).expect("svg");
        let xs = series.iter().flat_map(|(_, p)| p.iter().map(|q| q.0));
        let (xmin, xmax) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
        let ys = series.iter().flat_map(|(_, p)| p.iter().flat_map(|q| [q.1 - q.2, q.1 + q.2]));
        let (ymin, ymax) = ys.fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
        let (xmin, xmax) = if xmin < xmax { (xmin, xmax) } else { (xmin - 0.5, xmin + 0.5) };
        let pad = ((ymax - ymin) * 0.1).max(0.005);
        // Scores live in [0, 1]: the axis does not run past either end.
        let (ylo, yhi) = if ymin >= 0.0 && ymax <= 1.0 { ((ymin - pad).max(0.0), (ymax + pad).min(1.0)) } else { (ymin - pad, ymax + pad) };
        let yhi = y_top.filter(|&t| t > ylo).unwrap_or(yhi);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(xmin - (xmax - xmin) * 0.05..xmax + (xmax - xmin) * 0.05, ylo..yhi)
            .expect("chart");
        chart.configure_mesh().x_desc(x_desc).y_desc(y_desc).draw().expect("mesh");
        for (si, (name, points)) in series.iter().enumerate() {
            let color = COLORS[si % COLORS.len()];
            chart
                .draw_series(LineSeries::new(points.iter().map(|p| (p.0, p.1)), color.stroke_width(2)))
                .expect("line")
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], color.stroke_width(2)));
            chart.draw_series(points.iter().map(|p| Circle::new((p.0, p.1), 3, color.filled()))).expect("points");
            chart
                .draw_series(points.iter().filter(|p| p.2 > 0.0).map(|p| ErrorBar::new_vertical(p.0, p.1 - p.2, p.1, p.1 + p.2, color, 6)))
                .expect("error bars");
        }
        chart.configure_series_labels().position(SeriesLabelPosition::LowerRight).background_style(WHITE.mix(0.8)).border_style(BLACK).draw().expect("legend");
        root.present().expect("svg");
    }
    svg
}

#[cfg(test)]
mod tests {
    /// The y axis's tick labels of an SVG plot.
    fn ticks(svg: &str) -> Vec<f64> {
        svg.split('>').filter_map(|t| t.split('<').next()).filter_map(|t| t.trim().parse::<f64>().ok()).collect()
    }

    #[test]
    fn f1_axes_end_at_one() {
        let series = vec![("F1".to_string(), vec![(5.0, 0.91, 0.0), (95.0, 0.95, 0.0)])];
        let top = |y_top| ticks(&super::lines("t", "x", "y", &series, y_top)).into_iter().filter(|v| *v <= 1.0).fold(0.0, f64::max);
        assert!((top(Some(1.0)) - 1.0).abs() < 1e-9, "{}", top(Some(1.0)));
        assert!(top(None) < 0.97, "without a top the axis follows the data: {}", top(None));
    }
}
