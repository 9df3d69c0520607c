from vfi_cli.main import main

main()
