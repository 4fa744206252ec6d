/** The HTML around the server-rendered app: styles, the rendered markup, the state to hydrate from. */
export function page(markup: string, serializedState: string): string {
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>Zuno demo</title>
    <link rel="icon" href="data:," />
    <style>
      :root { font-family: system-ui, sans-serif; color: #1d2330; background: #f6f7fb; }
      main { max-width: 34rem; margin: 3rem auto; padding: 0 1rem; }
      h1 { margin-bottom: 0.25rem; }
      h2 { font-size: 1rem; margin: 0 0 0.5rem; }
      .hint { color: #5a6275; margin-top: 0; }
      section { background: white; border-radius: 12px; padding: 1.25rem 1.5rem; margin: 1rem 0; box-shadow: 0 1px 3px #0001; }
      .counter { display: flex; align-items: center; gap: 1.5rem; }
      [data-testid='counter-value'] { font-size: 3rem; font-variant-numeric: tabular-nums; min-width: 3ch; }
      button { font: inherit; padding: 0.5rem 1rem; border-radius: 8px; border: 1px solid #c9cfdc; background: #fff; cursor: pointer; }
      button.primary { background: #3a5bd9; color: white; border-color: #3a5bd9; }
      .status { display: flex; align-items: center; gap: 0.5rem; font-size: 0.9rem; color: #5a6275; }
      .dot { width: 0.6rem; height: 0.6rem; border-radius: 50%; background: #c9a227; }
      .status[data-status='connected'] .dot { background: #2ea44f; }
      .status[data-status='error'] .dot, .status[data-status='offline'] .dot, .status[data-status='unauthorized'] .dot,
      .status[data-status='forbidden'] .dot { background: #d73a49; }
      ul { list-style: none; padding: 0; margin: 0.75rem 0 0; }
      li { display: flex; align-items: center; gap: 0.5rem; padding: 0.3rem 0; }
      li.done span { text-decoration: line-through; color: #8a91a3; }
      form { display: flex; gap: 0.5rem; }
      input[type='text'] { flex: 1; font: inherit; padding: 0.5rem; border-radius: 8px; border: 1px solid #c9cfdc; }
      .meta { font-size: 0.85rem; color: #8a91a3; }
      .conflicts li { font-size: 0.9rem; color: #8a5a00; }
      .problem.delivery h2 { color: #5a6275; }
      .problem.credentials h2, .problem.refused h2 { color: #d73a49; }
      .online ul { display: flex; flex-wrap: wrap; gap: 0.25rem 1rem; margin: 0; }
      .online li { gap: 0.35rem; padding: 0; font-size: 0.9rem; }
      .swatch { width: 0.6rem; height: 0.6rem; border-radius: 50%; }
      .board { position: relative; min-height: 4rem; overflow: hidden; }
      .cursor { position: absolute; width: 8px; height: 8px; margin: -4px 0 0 -4px; border-radius: 50%; background: currentColor; pointer-events: none; transition: left 50ms linear, top 50ms linear; }
      .cursor span { position: absolute; left: 10px; top: 10px; padding: 0 0.3rem; border-radius: 4px; font-size: 0.75rem; white-space: nowrap; color: white; }
    </style>
  </head>
  <body>
    <div id="root">${markup}</div>
    <script>window.__ZUNO__ = ${serializedState}</script>
    <script type="module" src="/app.js"></script>
  </body>
</html>
`
}

/** What `GET /` answers when rendering fails: no stack, no message, nothing about the server. */
export const errorPage = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>Zuno demo: error</title>
  </head>
  <body>
    <h1>Something went wrong</h1>
    <p>The page could not be shown. Try again in a moment.</p>
  </body>
</html>
`
