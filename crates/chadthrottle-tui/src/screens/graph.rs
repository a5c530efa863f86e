//! The selected process's last 60 s: download and upload rates, and its limits as
//! flat lines.

use crate::app::App;
use crate::theme::Theme;
use chadthrottle_core::rate::format_rate;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::symbols::Marker;
use ratatui::widgets::{Axis, Block, Borders, Chart, Dataset, GraphType};

/// One line of the chart; the limits are drawn in dots so they read without colour.
fn line_of<'a>(
    name: &'static str,
    marker: Marker,
    style: Style,
    points: &'a [(f64, f64)],
) -> Dataset<'a> {
    Dataset::default()
        .name(name)
        .marker(marker)
        .graph_type(GraphType::Line)
        .style(style)
        .data(points)
}

pub fn draw(frame: &mut Frame, app: &App, area: Rect, theme: &Theme) {
    let Some(process) = app.selected_process() else {
        return;
    };
    let history = app.selected_history();
    let now = history.last().map_or(0, |p| p.at_ns);
    let ago = |at: u64| -((now.saturating_sub(at)) as f64 / 1e9);
    let down: Vec<(f64, f64)> = history
        .iter()
        .map(|p| (ago(p.at_ns), p.rx_rate as f64))
        .collect();
    let up: Vec<(f64, f64)> = history
        .iter()
        .map(|p| (ago(p.at_ns), p.tx_rate as f64))
        .collect();
    let line = |rate: u64| vec![(-60.0, rate as f64), (0.0, rate as f64)];
    let limit_down = process
        .limit
        .and_then(|l| l.down)
        .map(line)
        .unwrap_or_default();
    let limit_up = process
        .limit
        .and_then(|l| l.up)
        .map(line)
        .unwrap_or_default();
    let top = down
        .iter()
        .chain(&up)
        .chain(&limit_down)
        .chain(&limit_up)
        .map(|&(_, y)| y)
        .fold(1024.0_f64, f64::max)
        * 1.1;
    let datasets = vec![
        line_of("↓ download", Marker::Braille, theme.graph_download(), &down),
        line_of("↑ upload", Marker::Braille, theme.graph_upload(), &up),
        line_of(
            "↓ limit",
            Marker::Dot,
            theme.graph_limit_down(),
            &limit_down,
        ),
        line_of("↑ limit", Marker::Dot, theme.graph_limit_up(), &limit_up),
    ];
    let title = format!(" {} (PID {}) — last 60 s ", process.name, process.pid);
    let chart = Chart::new(datasets)
        .block(Block::default().borders(Borders::ALL).title(title))
        .x_axis(
            Axis::default()
                .bounds([-60.0, 0.0])
                .labels(["-60 s", "-30 s", "now"]),
        )
        .y_axis(Axis::default().bounds([0.0, top]).labels([
            "0".to_owned(),
            format_rate((top / 2.0) as u64),
            format_rate(top as u64),
        ]));
    frame.render_widget(chart, area);
}
