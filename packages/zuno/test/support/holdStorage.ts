/**
 * For the holder fixtures: loads `storage` and keeps the process holding its folder until killed,
 * printing "ready" once it has it; a refused load prints the error and exits with code 3.
 */
export async function holdStorage(storage: { load(): Promise<unknown> }): Promise<void> {
  try {
    await storage.load()
  } catch (error) {
    console.error(error instanceof Error ? error.message : error)
    process.exit(3)
  }
  console.log('ready')
  setInterval(() => {}, 1000)
}
