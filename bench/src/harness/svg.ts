/** Two small SVG charts for the benchmark report, with no dependency: a line chart and a bar chart. */

const WIDTH = 640
const HEIGHT = 320
const MARGIN = { top: 36, right: 170, bottom: 48, left: 72 }
const COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2']
const FONT = 'font-family="system-ui, sans-serif"'

/** A named series of (x, y) points. */
export interface Series {
  name: string
  points: Array<[number, number]>
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

/** Round numbers for axis ticks between 0 and `max`. */
function ticks(max: number, count = 5): number[] {
  const step = 10 ** Math.floor(Math.log10(max / count))
  const nice = [1, 2, 2.5, 5, 10].map((m) => m * step).find((s) => max / s <= count) ?? step * 10
  return Array.from({ length: Math.floor(max / nice) + 1 }, (_, i) => i * nice)
}

function format(value: number): string {
  if (value >= 1_000_000) return `${value / 1_000_000}M`
  if (value >= 1000) return `${value / 1000}k`
  return String(value)
}

function frame(title: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" ${FONT} font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#fff"/>`,
    `<text x="${WIDTH / 2 - MARGIN.right / 2 + MARGIN.left / 2}" y="20" text-anchor="middle" font-size="14" font-weight="600">${escape(title)}</text>`,
    ...body,
    '</svg>',
    '',
  ].join('\n')
}

function yAxis(max: number, label: string, plotHeight: number): { scale: (y: number) => number; lines: string[] } {
  const top = ticks(max).at(-1) as number
  const limit = Math.max(top, max)
  const scale = (y: number) => MARGIN.top + plotHeight - (y / limit) * plotHeight
  const lines = ticks(limit).map(
    (tick) =>
      `<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${scale(tick)}" y2="${scale(tick)}" stroke="#e5e7eb"/>` +
      `<text x="${MARGIN.left - 6}" y="${scale(tick) + 4}" text-anchor="end" fill="#374151">${format(tick)}</text>`,
  )
  lines.push(
    `<text transform="translate(16 ${MARGIN.top + plotHeight / 2}) rotate(-90)" text-anchor="middle" fill="#374151">${escape(label)}</text>`,
  )
  return { scale, lines }
}

function legend(names: string[]): string[] {
  return names.map(
    (name, i) =>
      `<rect x="${WIDTH - MARGIN.right + 16}" y="${MARGIN.top + i * 20}" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/>` +
      `<text x="${WIDTH - MARGIN.right + 34}" y="${MARGIN.top + i * 20 + 10}">${escape(name)}</text>`,
  )
}

/** Lines over the x values the series share (placed evenly, as categories). */
export function lineChart(options: { title: string; xLabel: string; yLabel: string; series: Series[] }): string {
  const xs = [...new Set(options.series.flatMap((series) => series.points.map(([x]) => x)))].sort((a, b) => a - b)
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom
  const x = (value: number) => MARGIN.left + ((xs.indexOf(value) + 0.5) / xs.length) * plotWidth
  const max = Math.max(...options.series.flatMap((series) => series.points.map(([, y]) => y)))
  const { scale, lines } = yAxis(max, options.yLabel, plotHeight)
  const body = [...lines]
  for (const value of xs) {
    body.push(`<text x="${x(value)}" y="${HEIGHT - MARGIN.bottom + 18}" text-anchor="middle" fill="#374151">${value.toLocaleString('en-US')}</text>`)
  }
  body.push(`<text x="${MARGIN.left + plotWidth / 2}" y="${HEIGHT - 8}" text-anchor="middle" fill="#374151">${escape(options.xLabel)}</text>`)
  options.series.forEach((series, i) => {
    const color = COLORS[i % COLORS.length]
    const points = series.points.map(([px, py]) => `${x(px).toFixed(1)},${scale(py).toFixed(1)}`)
    body.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${points.join(' ')}"/>`)
    for (const [px, py] of series.points) body.push(`<circle cx="${x(px).toFixed(1)}" cy="${scale(py).toFixed(1)}" r="3.5" fill="${color}"/>`)
  })
  body.push(...legend(options.series.map((series) => series.name)))
  return frame(options.title, body)
}

/** One bar per entry, labelled with its value. */
export function barChart(options: { title: string; yLabel: string; bars: Array<{ label: string; value: number; zuno: boolean }> }): string {
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom
  const max = Math.max(...options.bars.map((bar) => bar.value))
  const { scale, lines } = yAxis(max, options.yLabel, plotHeight)
  const body = [...lines]
  const slot = plotWidth / options.bars.length
  options.bars.forEach((bar, i) => {
    const x = MARGIN.left + i * slot + slot * 0.15
    const y = scale(bar.value)
    body.push(
      `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(slot * 0.7).toFixed(1)}" height="${(MARGIN.top + plotHeight - y).toFixed(1)}" fill="${bar.zuno ? COLORS[0] : '#9ca3af'}"/>`,
      `<text x="${(x + slot * 0.35).toFixed(1)}" y="${(y - 4).toFixed(1)}" text-anchor="middle">${Math.round(bar.value).toLocaleString('en-US')}</text>`,
      `<text x="${(x + slot * 0.35).toFixed(1)}" y="${HEIGHT - MARGIN.bottom + 16}" text-anchor="middle" font-size="10" fill="#374151">${escape(bar.label)}</text>`,
    )
  })
  body.push(...legend(['Zuno', 'baseline']).map((line, i) => (i === 1 ? line.replace(COLORS[1] as string, '#9ca3af') : line)))
  return frame(options.title, body)
}
