// AtollEngine
