import react from '@vitejs/plugin-react'
import { defineConfig } from 'vite'

// Where the Express server listens in development (the `dev:api` script).
const api = process.env.API_URL ?? 'http://127.0.0.1:3001'

export default defineConfig({
  plugins: [react()],
  server: {
    proxy: {
      // The app's own API and Zuno's endpoints go to Express, so the page calls them on its own origin.
      '/api': api,
      '/zuno': api,
    },
  },
})
