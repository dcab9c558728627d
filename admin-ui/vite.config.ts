import { defineConfig } from "vitest/config";

// The host embeds dist/ as it is, so file names stay stable (no content hashes): a rebuild
// changes file contents, not the set of files. The host revalidates them with ETags.
export default defineConfig({
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsInlineLimit: 0,
    rolldownOptions: {
      output: {
        entryFileNames: "assets/app.js",
        chunkFileNames: "assets/[name].js",
        assetFileNames: "assets/[name][extname]",
      },
    },
  },
  server: {
    // `npm run dev` talks to a host on RTE_URL (default the host's default address).
    proxy: { "/api": { target: process.env.RTE_URL ?? "http://127.0.0.1:8080", changeOrigin: true } },
  },
  test: {
    include: ["src/**/*.test.ts"],
  },
});
