from xaicli.cli.app import main

main()
